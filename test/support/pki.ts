/** The test PKI: P-256 certificates and keys committed under test/fixtures/pki (made by its make.sh). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder holding ca.pem/.key (root), inter.pem (intermediate CA under ca), server.pem
 * (CN=localhost, SAN IP:127.0.0.1 + DNS:localhost, under inter), server-direct.pem and
 * client.pem (under ca, same SANs), fake-inter.pem (not a CA), evil.pem (under fake-inter),
 * other.pem (an unrelated root). Each X.pem has its key in X.key. Committed rather than made per
 * run, so the X.509 tests run (and can fail) on machines without the openssl CLI.
 */
export const PKI_DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'), 'test', 'fixtures', 'pki');
