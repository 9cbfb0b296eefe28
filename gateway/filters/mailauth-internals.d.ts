// The two parts of mailauth (no type declarations of their own) that mailauth-header-scan.ts
// reaches into.
declare module "mailauth/lib/dkim/message-parser.js" {
  export class MessageParser {
    state: string;
    stateBytes: number[];
    headerChunks: Buffer[];
    headers: unknown;
    messageHeaders(headers: unknown): Promise<void>;
    nextChunk(chunk: Buffer): Promise<void>;
    processChunk(chunk: Buffer): Promise<void>;
  }
}

declare module "mailauth/lib/tools.js" {
  export function parseHeaders(block: Buffer): unknown;
}
