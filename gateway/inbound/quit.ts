/**
 * After QUIT the gateway closes the connection as soon as its 221 is written, as Postfix's
 * smtpd does and as RFC 5321 §4.1.1.10 has it ("the receiver MUST send a 221 OK reply, and
 * then close the transmission channel").
 *
 * smtp-server (3.21.6, pinned: this file replaces one of its handlers, SMTPConnection's
 * handler_QUIT) half-closes instead and keeps the socket until the client closes its side, at
 * most 5 s. Postfix's own client does not wait for the 221 (`smtp_skip_quit_response`, on by
 * default) and closes its socket while the reply is on its way, so its kernel answers the 221
 * with a reset; smtp-source does the same. The half-closed socket then reads that reset, and
 * Node makes an error of it, with its stack formatted, on every such connection. Closed once the
 * 221 is written, the socket reads nothing more: with smtp-source and a connection per message,
 * 7-10% more messages a second with the verdict in its own thread (about 0.1 ms less of the
 * gateway's CPU a message) and 5% more in the gateway's thread, in alternating runs
 * (bench/RESULTS.md, the AX session). What a client sends after QUIT was never going to be
 * answered (smtp-server stops parsing at QUIT too); a client that sends more can get a reset
 * instead of the end of the stream, which is what Postfix's smtpd gives it.
 */
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";

let installed = false;

/** Makes every connection close once its 221 to QUIT is written (see the file comment). */
export function closeAfterQuit(): void {
  if (installed) return;
  installed = true;
  SMTPConnection.prototype.handler_QUIT = function (this: SMTPConnection, _command, callback) {
    const socket = this._socket;
    this.send(221, "Bye");
    this.close(); // smtp-server's: ends the socket after the 221 and stops parsing
    if (!socket.destroyed) {
      if (socket.writableFinished) socket.destroy();
      else socket.once("finish", () => socket.destroy());
    }
    callback();
  };
}
