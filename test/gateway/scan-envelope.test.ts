/**
 * `moat scan` reads a saved message's envelope from its headers (gateway/scan-command.ts):
 * the client's IP, HELO and name come from the topmost Received header that names the IP.
 */
import { describe, expect, it } from "vitest";
import { envelopeFromHeaders } from "../../gateway/scan-command";

const saved = (received: string) =>
  Buffer.from(
    `Received: from mx.northwind.example (localhost)\r\n\tby store.northwind.example; Sun, 22 Nov 2026 10:00:00 +0000\r\n${received}\r\nReturn-Path: <carl@partner.example>\r\nFrom: Carl <carl@partner.example>\r\nTo: anna.berg@northwind.example\r\nSubject: hi\r\n\r\nbody\r\n`,
  );

describe("moat scan's envelope from a saved message", () => {
  it("takes the client's name as the receiving server recorded it, and none when it wrote unknown", () => {
    expect(
      envelopeFromHeaders(
        saved("Received: from mail.partner.example (out-7.partner.example [203.0.113.7])\r\n\tby mx"),
      ),
    ).toEqual({
      mailFrom: "carl@partner.example",
      clientIp: "203.0.113.7",
      clientName: "out-7.partner.example",
      helo: "mail.partner.example",
      rcptTo: ["anna.berg@northwind.example"],
    });
    const unknown = envelopeFromHeaders(saved("Received: from friend (unknown [198.51.100.4])\r\n\tby mx"));
    expect(unknown.clientIp).toBe("198.51.100.4");
    expect(unknown.helo).toBe("friend");
    expect(unknown).not.toHaveProperty("clientName");
  });
});
