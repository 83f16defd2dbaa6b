/**
 * RFC 8323 §5 signalling messages (codes 7.xx) and their options. Option numbers are per signal
 * code (§5.2): option 2 is Max-Message-Size in a CSM, Custody in a Ping, Alternative-Address in a
 * Release and Bad-CSM-Option in an Abort.
 */
import { EMPTY_BYTES, createMessage, decodeString, decodeUint, encodeString, encodeUint, type CoapMessage } from '../coap/message.js';

export const SignalCode = {
  Csm: (7 << 5) | 1,
  Ping: (7 << 5) | 2,
  Pong: (7 << 5) | 3,
  Release: (7 << 5) | 4,
  Abort: (7 << 5) | 5,
} as const;

export const CsmOption = { MaxMessageSize: 2, BlockWiseTransfer: 4 } as const;
export const PingOption = { Custody: 2 } as const;
export const ReleaseOption = { AlternativeAddress: 2, HoldOff: 4 } as const;
export const AbortOption = { BadCsmOption: 2 } as const;

/** §5.3.1: the base value, and the value used by a peer that never says otherwise. */
export const BASE_MAX_MESSAGE_SIZE = 1152;

export const isSignalCode = (code: number): boolean => code >> 5 === 7;

/** What a CSM said; undefined fields were absent (CSM options are cumulative, §5.3). */
export interface CsmSettings {
  maxMessageSize?: number;
  blockWiseTransfer?: boolean;
}

export function csmMessage(settings: CsmSettings): CoapMessage {
  const options = [];
  if (settings.maxMessageSize !== undefined) options.push({ number: CsmOption.MaxMessageSize, value: encodeUint(settings.maxMessageSize) });
  if (settings.blockWiseTransfer) options.push({ number: CsmOption.BlockWiseTransfer, value: EMPTY_BYTES });
  return createMessage({ code: SignalCode.Csm, options });
}

export function pingMessage(token: Uint8Array, custody: boolean): CoapMessage {
  return createMessage({ code: SignalCode.Ping, token, options: custody ? [{ number: PingOption.Custody, value: EMPTY_BYTES }] : [] });
}

export function pongMessage(token: Uint8Array, custody: boolean): CoapMessage {
  return createMessage({ code: SignalCode.Pong, token, options: custody ? [{ number: PingOption.Custody, value: EMPTY_BYTES }] : [] });
}

export function releaseMessage(diagnostic: string, holdOffSeconds?: number): CoapMessage {
  return createMessage({
    code: SignalCode.Release,
    options: holdOffSeconds === undefined ? [] : [{ number: ReleaseOption.HoldOff, value: encodeUint(holdOffSeconds) }],
    payload: encodeString(diagnostic),
  });
}

export function abortMessage(diagnostic: string, badCsmOption?: number): CoapMessage {
  return createMessage({
    code: SignalCode.Abort,
    options: badCsmOption === undefined ? [] : [{ number: AbortOption.BadCsmOption, value: encodeUint(badCsmOption) }],
    payload: encodeString(diagnostic),
  });
}

/** Why a signalling message cannot be processed: the connection must be aborted (§5.2). */
export class SignalError extends Error {
  constructor(
    message: string,
    /** For a CSM: the option at fault, sent back as Bad-CSM-Option (§5.6). */
    readonly badCsmOption?: number,
  ) {
    super(message);
    this.name = 'SignalError';
  }
}

/** §5.2: critical signalling options nobody here understands abort the connection; elective ones are ignored. */
function checkOptions(message: CoapMessage, known: readonly number[], what: string, isCsm = false): void {
  for (const option of message.options) {
    if (known.includes(option.number)) continue;
    if (option.number % 2 === 1) {
      throw new SignalError(`unknown critical option ${option.number} in ${what}`, isCsm ? option.number : undefined);
    }
  }
}

export function parseCsm(message: CoapMessage): CsmSettings {
  checkOptions(message, [CsmOption.MaxMessageSize, CsmOption.BlockWiseTransfer], 'CSM', true);
  const settings: CsmSettings = {};
  for (const option of message.options) {
    if (option.number === CsmOption.MaxMessageSize) {
      if (option.value.length > 4) throw new SignalError('Max-Message-Size longer than 4 bytes', CsmOption.MaxMessageSize);
      settings.maxMessageSize = decodeUint(option.value);
    } else if (option.number === CsmOption.BlockWiseTransfer) {
      if (option.value.length !== 0) throw new SignalError('Block-Wise-Transfer is not empty', CsmOption.BlockWiseTransfer);
      settings.blockWiseTransfer = true;
    }
  }
  return settings;
}

export function parsePingOrPong(message: CoapMessage): { custody: boolean } {
  checkOptions(message, [PingOption.Custody], message.code === SignalCode.Ping ? 'Ping' : 'Pong');
  return { custody: message.options.some((o) => o.number === PingOption.Custody) };
}

export function parseRelease(message: CoapMessage): { alternativeAddresses: string[]; holdOffSeconds?: number } {
  checkOptions(message, [ReleaseOption.AlternativeAddress, ReleaseOption.HoldOff], 'Release');
  const alternativeAddresses: string[] = [];
  let holdOffSeconds: number | undefined;
  for (const option of message.options) {
    if (option.number === ReleaseOption.AlternativeAddress) alternativeAddresses.push(decodeString(option.value));
    else if (option.number === ReleaseOption.HoldOff) holdOffSeconds = decodeUint(option.value);
  }
  return holdOffSeconds === undefined ? { alternativeAddresses } : { alternativeAddresses, holdOffSeconds };
}

export function parseAbort(message: CoapMessage): { badCsmOption?: number } {
  checkOptions(message, [AbortOption.BadCsmOption], 'Abort');
  const bad = message.options.find((o) => o.number === AbortOption.BadCsmOption);
  return bad === undefined ? {} : { badCsmOption: decodeUint(bad.value) };
}
