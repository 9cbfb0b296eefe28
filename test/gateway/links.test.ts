import { describe, expect, it } from "vitest";
import { extractLinks } from "../../gateway/filters/message";

describe("the links of a message", () => {
  it("takes each anchor's target and shown text, entities decoded, and the text part's bare URLs once", () => {
    const html =
      '<p><a class="x" href="https://shop.example/?a=1&amp;b=2">Tom &amp; Jerry&#39;s <b>offer</b></a> ' +
      "<a href='https://bank.example/login'>https://bank.example</a> <a href=https://plain.example>plain</a></p>";
    const text = "See https://shop.example/?a=1&b=2 and https://other.example/page today";
    expect(extractLinks(html, text)).toEqual([
      { href: "https://shop.example/?a=1&b=2", text: "Tom & Jerry's offer" },
      { href: "https://bank.example/login", text: "https://bank.example" },
      { href: "https://plain.example", text: "plain" },
      { href: "https://other.example/page", text: "" },
    ]);
  });
});
