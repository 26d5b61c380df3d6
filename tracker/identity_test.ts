import assert from "node:assert/strict";
import { IdentityCheck } from "./identity.ts";
import { ReplayCache } from "./replay_cache.ts";
import { signedRegistration, testIdentity } from "./_test_setup.ts";
import { registrationBytes } from "../proto/tracker_auth.ts";
import { ForbiddenError } from "../proto/errors.ts";

Deno.test("IdentityCheck.check() takes a peer's own signature once and refuses forged, broken or replayed ones", async () => {
  const check = new IdentityCheck(new ReplayCache());
  const [a, b] = [await testIdentity(), await testIdentity()];
  const rec = await signedRegistration(a, { port: 5801 });
  const take = (r: typeof rec, sig = r.signature) =>
    check.check("test", r.peerId, r.publicKey, registrationBytes(r), r.signedAt, sig)
      .then(() => "ok", (e) => (assert.ok(e instanceof ForbiddenError), e.code));
  assert.equal(await take(rec), "ok");
  assert.equal(await take(rec), "replayed_signature");
  const other = await signedRegistration(a, { port: 5802 });
  assert.equal(await take({ ...other, port: 5803 }), "bad_signature", "other bytes");
  const byB = await signedRegistration(b, { port: 5801 });
  assert.equal(await take(other, byB.signature), "bad_signature", "another key's signature");
  assert.equal(await take(other, other.signature.slice(0, 40)), "bad_signature", "too short");
  assert.equal(await take(other, "!".repeat(86)), "bad_signature", "not base64url");
  assert.equal(await take({ ...other, publicKey: b.publicKey }), "peer_id_mismatch");
  assert.equal(await take(other), "ok");
});
