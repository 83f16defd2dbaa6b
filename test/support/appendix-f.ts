/** The cacheable-OSCORE Appendix F vectors by section, and one labelled value as bytes. */
import assert from 'node:assert/strict';
import { fromHex } from '../../src/cose/cbor.js';
import { APPENDIX_F } from '../group-oscore-vectors.js';

export const F1 = APPENDIX_F['F.1']!;
export const F2 = APPENDIX_F['F.2']!;
export const F3 = APPENDIX_F['F.3']!;

/** The value labelled `label` in an Appendix F section; fails the test when the generator did not produce it. */
export const v = (section: Readonly<Record<string, string>>, label: string): Uint8Array => {
  const hex = section[label];
  assert.ok(hex !== undefined, `vector "${label}" was generated`);
  return fromHex(hex);
};
