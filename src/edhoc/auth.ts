/**
 * The static-DH and key checks of auth-steps.ts with Node's crypto (KeyObjects), for the modules
 * outside the EDHOC core that use them (credentials, the forward-secrecy attack demonstration).
 */
import type { KeyObject } from 'node:crypto';
import { checkOwnKey as checkOwnKeyWith, chainPrkStep, ownKeyFits as ownKeyFitsWith } from './auth-steps.js';
import { runSync } from './crypto.js';
import { NODE_EDHOC_CRYPTO as node } from './node-crypto.js';
import type { CipherSuite } from './suites.js';

export type { MacInput } from './auth-steps.js';

/** Checks that this endpoint's key fits its role in the method and suite. */
export const checkOwnKey = (suite: CipherSuite, staticDh: boolean, privateKey: KeyObject): void => checkOwnKeyWith(node, suite, staticDh, privateKey);

/** Whether a key fits, without throwing. */
export const ownKeyFits = (suite: CipherSuite, staticDh: boolean, privateKey: KeyObject): boolean => ownKeyFitsWith(node, suite, staticDh, privateKey);

/** PRK_3e2m or PRK_4e3m (§4.1.1.2–3). */
export const chainPrk = (suite: CipherSuite, prk: Uint8Array, saltLabel: number, th: Uint8Array, staticDhSecretValue: Uint8Array | undefined): Uint8Array =>
  runSync(chainPrkStep(node, suite, prk, saltLabel, th, staticDhSecretValue));
