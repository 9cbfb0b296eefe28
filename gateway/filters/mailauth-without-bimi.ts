/**
 * mailauth loads its BIMI code when it loads, although the gateway asks for no BIMI
 * (`disableBimi` in auth.ts: BIMI fetches a sender's logo and certificate over HTTPS, for a mail
 * client to show, and has no part in a verdict). That code brings undici, asn1js, an X.509 parser
 * and fast-xml-parser: about 2 MB of JavaScript, and 7 MB more memory in each thread that loads
 * mailauth (measured in a worker thread; bench/RESULTS.md, the AW session). Importing this
 * module before mailauth puts stand-ins for mailauth's two BIMI modules into require's cache
 * (which Node documents as open to adding entries), so mailauth's `require('./bimi')` gets the
 * stand-in; calling one throws, naming why. mailauth is pinned (package.json): a release that
 * moves those files makes `require.resolve` below throw at start, not load BIMI unnoticed
 * (test/e2e/production-build.test.ts checks what the verdict's thread loads).
 */
import Module, { createRequire } from "node:module";

const requireHere = createRequire(__filename);

function notLoaded(name: string): () => never {
  return () => {
    throw new Error(`mailauth's ${name} is not loaded: the gateway asks for no BIMI (mailauth-without-bimi.ts)`);
  };
}

const STAND_INS: Readonly<Record<string, Record<string, unknown>>> = {
  "mailauth/lib/bimi/index.js": { bimi: notLoaded("bimi"), validateVMC: notLoaded("validateVMC") },
  "mailauth/lib/bimi/validate-svg.js": { validateSvg: notLoaded("validateSvg") },
};

for (const [id, api] of Object.entries(STAND_INS)) {
  const file = requireHere.resolve(id);
  if (requireHere.cache[file]) continue; // already loaded: the real one, or a stand-in from a second copy of this module
  const standIn = new Module(file);
  standIn.filename = file;
  standIn.loaded = true;
  standIn.exports = api;
  requireHere.cache[file] = standIn;
}
