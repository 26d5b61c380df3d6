/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with the `openssl`
 * command for TLS tests, and a fetch client that trusts it.
 *
 * @module
 */

/** A PEM certificate and key for 127.0.0.1/localhost, and an HTTP client trusting it. */
export interface TestCert extends Disposable {
  cert: string;
  key: string;
  /** Trusts `cert`, for `fetch(url, { client })`. */
  client: Deno.HttpClient;
}

/** Makes a fresh self-signed P-256 certificate valid for a day. */
export async function testCert(): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-tls-" });
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        // An end entity, not a CA (rustls refuses a CA certificate as a server's).
        "-addext",
        "basicConstraints=critical,CA:FALSE",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`openssl failed: ${new TextDecoder().decode(out.stderr)}`);
    const cert = await Deno.readTextFile(`${dir}/cert.pem`);
    const key = await Deno.readTextFile(`${dir}/key.pem`);
    const client = Deno.createHttpClient({ caCerts: [cert] });
    return { cert, key, client, [Symbol.dispose]: () => client.close() };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
