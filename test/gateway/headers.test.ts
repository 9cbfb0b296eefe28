import { describe, expect, it } from "vitest";
import { emptyLineEnd, headerValues } from "../../gateway/headers";

const values = (text: string, name: string) => headerValues(Buffer.from(text, "latin1"), name);

describe("a header field's values from the start of a message", () => {
  it("gives every value of the field, unfolded, whatever the case of its name", () => {
    const head =
      "Received: from a\r\n by b\r\nSUBJECT: Quarterly\r\n\treport\r\nsubject: second\r\n\r\nSubject: in the body\r\n";
    expect(values(head, "Subject")).toEqual(["Quarterly report", "second"]);
    expect(values(head, "received")).toEqual(["from a by b"]);
    expect(values(head, "X-None")).toEqual([]);
  });

  it("finds the end of the header block with bare line feeds and mixed line ends too", () => {
    expect(values("Subject: lf\n\nSubject: body\n", "subject")).toEqual(["lf"]);
    expect(values("Subject: mixed\n\r\nSubject: body\r\n", "subject")).toEqual(["mixed"]);
    expect(values("Subject: crlf lf\r\n\nSubject: body\r\n", "subject")).toEqual(["crlf lf"]);
    expect(values("\r\n\r\nSubject: after an empty first line\r\n", "subject")).toEqual([]);
  });

  it("gives undefined while the header block has not ended within what was read", () => {
    expect(values("Subject: cut\r\nFrom: a@b.example\r\n", "subject")).toBeUndefined();
    expect(values("Subject: cut\r\n\r", "subject")).toBeUndefined();
  });

  it("finds the empty line after LF LF or LF CR LF, also across the pieces of a message", () => {
    expect(emptyLineEnd(Buffer.from("a: b\r\n\r\nbody"))).toBe(7);
    expect(emptyLineEnd(Buffer.from("a: b\n\nbody"))).toBe(5);
    expect(emptyLineEnd(Buffer.from("a: b\r\nc: d\r\n"))).toBe(-1);
    expect(emptyLineEnd(Buffer.from("\nbody"), [0x0a, 0x0d])).toBe(0);
    expect(emptyLineEnd(Buffer.from("\r\nbody"), [0x0a])).toBe(1);
    expect(emptyLineEnd(Buffer.from("\nbody"), [0x0d])).toBe(-1);
  });
});
