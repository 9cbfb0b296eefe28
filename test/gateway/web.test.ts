import { describe, expect, it } from "vitest";
import { build } from "../../gateway/web/app";

describe("the HTTP app", () => {
  it("answers /healthz with the report, 503 when degraded", async () => {
    let status: "ok" | "degraded" = "ok";
    const app = build({ health: async () => ({ status, customer: "acme", checks: { smtp: "listening" } }) });
    const ok = await app.inject({ method: "GET", url: "/healthz" });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ status: "ok", customer: "acme", checks: { smtp: "listening" } });
    status = "degraded";
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(503);
    expect((await app.inject({ method: "GET", url: "/nothing-here" })).statusCode).toBe(404);
    await app.close();
  });
});
