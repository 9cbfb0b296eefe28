/**
 * A small authoritative DNS server on loopback (UDP) for tests: answers A, AAAA, MX, TXT and
 * PTR (under `1.0.0.127.in-addr.arpa` style names) from a zone map, NXDOMAIN for names it does
 * not have, NODATA for types a name lacks, SERVFAIL for names listed as broken ("*": every
 * name, the fast failure rspamd needs offline). Real DNS packets (dns-packet), so the
 * gateway's real resolver talks to it through MOAT_DNS_SERVERS.
 */
import { type RemoteInfo, createSocket } from "node:dgram";
import * as packet from "dns-packet";

export interface Zone {
  /** A TXT record longer than 255 bytes is given as its strings (a DKIM key). */
  readonly [name: string]: {
    A?: string[];
    AAAA?: string[];
    PTR?: string[];
    MX?: { exchange: string; preference: number }[];
    TXT?: (string | string[])[];
  };
}

export interface DnsServer {
  readonly address: string;
  readonly queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(zone: Zone, broken: readonly string[] = []): Promise<DnsServer> {
  const socket = createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (message: Buffer, from: RemoteInfo) => {
    const query = packet.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    queries.push(`${question.type} ${name}`);
    const entry = zone[name];
    let rcode: "NOERROR" | "NXDOMAIN" | "SERVFAIL" = "NOERROR";
    const answers: packet.Answer[] = [];
    if (broken.includes(name) || broken.includes("*")) rcode = "SERVFAIL";
    else if (!entry) rcode = "NXDOMAIN";
    else if (question.type === "A") for (const a of entry.A ?? []) answers.push({ type: "A", name, ttl: 60, data: a });
    else if (question.type === "AAAA")
      for (const a of entry.AAAA ?? []) answers.push({ type: "AAAA", name, ttl: 60, data: a });
    else if (question.type === "PTR")
      for (const ptr of entry.PTR ?? []) answers.push({ type: "PTR", name, ttl: 60, data: ptr });
    else if (question.type === "MX")
      for (const mx of entry.MX ?? []) answers.push({ type: "MX", name, ttl: 60, data: mx });
    else if (question.type === "TXT")
      for (const txt of entry.TXT ?? []) answers.push({ type: "TXT", name, ttl: 60, data: txt });
    const response = packet.encode({
      id: query.id,
      type: "response",
      flags: packet.AUTHORITATIVE_ANSWER | (rcode === "NXDOMAIN" ? 3 : rcode === "SERVFAIL" ? 2 : 0),
      questions: query.questions,
      answers,
    });
    socket.send(response, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
