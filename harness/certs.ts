// Certificates made with openssl for TLS tests, the soak and the bench: a
// self-signed one, or a CA that issues server certificates (as renewals are).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
}

/** `dir/name.crt` and `dir/name.key`, valid two days for `san` (openssl subjectAltName syntax). */
export function selfSignedCert(dir: string, name: string, san = 'IP:127.0.0.1,DNS:localhost'): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...EC, '-days', '2', '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`]);
  return { cert, key };
}

/** A CA in `dir`, and a way to have it issue a certificate for 127.0.0.1 into `cert` and `key`. */
export function testCa(dir: string): { ca: string; issue: (cert: string, key: string) => void } {
  const { cert: ca, key: caKey } = selfSignedCert(dir, 'test-ca', 'DNS:inosync-test-ca');
  const ext = join(dir, 'leaf.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  return {
    ca,
    issue: (cert, key) => {
      const csr = join(dir, 'leaf.csr');
      openssl(['req', ...EC, '-keyout', key, '-out', csr, '-subj', '/CN=inosync-master']);
      openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-out', cert, '-extfile', ext]);
    },
  };
}
