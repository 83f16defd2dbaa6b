/**
 * RFC 7252 §5.4.1 (critical vs elective), §5.4.3 (a value of the wrong length is treated like an
 * unrecognized option) and §5.4.5 (supernumerary occurrences of a non-repeatable option are treated
 * like unrecognized options). Shared by the server (→ 4.02) and the client (→ reject the response).
 */
import type { CoapOption } from './message.js';
import { hasValidLength, isCritical, optionDefinition, optionName } from './options.js';

export interface OptionCheck {
  /** The first critical option that is unrecognized, malformed or repeated, described for a 4.02 diagnostic. */
  criticalProblem?: { number: number; reason: string };
  /** The options with unrecognized/malformed/supernumerary elective occurrences removed. */
  options: CoapOption[];
}

export function checkOptions(
  options: readonly CoapOption[],
  isRecognized: (number: number) => boolean = (n) => optionDefinition(n) !== undefined,
): OptionCheck {
  let cleaned: CoapOption[] | undefined;
  let previousNumber = -1;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    let reason: string | undefined;
    if (!isRecognized(o.number)) {
      const known = optionDefinition(o.number);
      reason = known ? `unsupported critical option ${known.name} (${o.number})` : `unrecognized critical option ${o.number}`;
    }
    else if (!hasValidLength(o.number, o.value.length)) reason = `${optionName(o.number)} has an invalid length (${o.value.length})`;
    // Repetition is judged for the options this table defines; whether an option it does not
    // know may repeat is for whoever recognizes it (a proxy forwards unknown Safe-to-Forward ones as they are).
    else if (o.number === previousNumber && optionDefinition(o.number)?.repeatable === false) reason = `${optionName(o.number)} must not be repeated`;
    previousNumber = o.number;
    if (reason === undefined) {
      cleaned?.push(o);
      continue;
    }
    if (isCritical(o.number)) return { criticalProblem: { number: o.number, reason }, options: [...options] };
    cleaned ??= options.slice(0, i);
  }
  return { options: cleaned ?? (options as CoapOption[]) };
}

/**
 * checkOptions restricted to the occurrences of `numbers`; every other option passes unchecked.
 * For the options a layer reads before the full check can run (the outer Block1/Block2/Size1 and
 * OSCORE options of a protected request, RFC 8613 §8.2, read before decryption). Elective problems
 * among them are removed from the returned options, as checkOptions does.
 */
export function checkOptionsAmong(options: readonly CoapOption[], numbers: ReadonlySet<number>): OptionCheck {
  if (validAmong(options, numbers)) return { options: options as CoapOption[] };
  const among = options.filter((o) => numbers.has(o.number));
  const check = checkOptions(among, () => true);
  if (check.criticalProblem) return { criticalProblem: check.criticalProblem, options: [...options] };
  if (check.options.length === among.length) return { options: options as CoapOption[] };
  const kept = new Set(check.options);
  return { options: options.filter((o) => !numbers.has(o.number) || kept.has(o)) };
}

/**
 * Whether checkOptionsAmong would keep `options` as they are: every occurrence of `numbers` of
 * valid length and none repeated that must not be. One pass, nothing allocated: the outer check
 * of every OSCORE request (issue 21) takes this way, the general one only for a faulty message.
 */
function validAmong(options: readonly CoapOption[], numbers: ReadonlySet<number>): boolean {
  let previousNumber = -1;
  for (let i = 0; i < options.length; i++) {
    const o = options[i]!;
    const number = o.number;
    if (!numbers.has(number)) continue;
    if (!hasValidLength(number, o.value.length) || (number === previousNumber && optionDefinition(number)?.repeatable !== true)) return false;
    previousNumber = number;
  }
  return true;
}
