/** Test PKI made with the openssl CLI: a P-256 root CA, an intermediate, leaves and misfits. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes into `dir`: ca.pem/.key (root), inter.pem (intermediate CA under ca), server.pem
 * (CN=localhost, SAN IP:127.0.0.1 + DNS:localhost, under inter), server-direct.pem and
 * client.pem (under ca, same SANs), fake-inter.pem (not a CA), evil.pem (under fake-inter),
 * other.pem (an unrelated root). Each X.pem has its key in X.key. Throws if openssl is missing.
 */
export function makePki(dir: string): void {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  writeFileSync(join(dir, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  writeFileSync(join(dir, 'leaf.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  writeFileSync(join(dir, 'notca.ext'), 'basicConstraints=CA:FALSE\n');
  const key = (n: string): void => openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${n}.key`]);
  const root = (n: string, subj: string): void => {
    key(n);
    openssl(['req', '-x509', '-new', '-key', `${n}.key`, '-subj', subj, '-days', '2', '-out', `${n}.pem`, '-addext', 'basicConstraints=critical,CA:TRUE']);
  };
  const sign = (n: string, subj: string, issuer: string, ext: string): void => {
    key(n);
    openssl(['req', '-new', '-key', `${n}.key`, '-subj', subj, '-out', `${n}.csr`]);
    openssl(['x509', '-req', '-in', `${n}.csr`, '-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', `${n}.pem`]);
  };
  root('ca', '/CN=coapsec test CA');
  sign('inter', '/CN=coapsec intermediate', 'ca', 'ca.ext');
  sign('server', '/CN=localhost/O=coapsec', 'inter', 'leaf.ext');
  sign('server-direct', '/CN=localhost/O=coapsec server', 'ca', 'leaf.ext');
  sign('client', '/CN=client-1/O=coapsec', 'ca', 'leaf.ext');
  sign('fake-inter', '/CN=not a CA', 'ca', 'notca.ext');
  sign('evil', '/CN=localhost/O=evil', 'fake-inter', 'leaf.ext');
  root('other', '/CN=other CA');
}
