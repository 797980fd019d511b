import { Token } from 'aws-cdk-lib';

/**
 * Synth-time prop validation. Every message names the prop that is wrong,
 * e.g. `HermesSettings.maxTurns must be an integer between 1 and 1000 (got 0)`.
 * Unresolved tokens are skipped: they can only be checked at deploy time.
 */
export class PropError extends Error {
  constructor(prop: string, problem: string) {
    super(`${prop} ${problem}`);
    this.name = 'PropError';
  }
}

export function checkInteger(prop: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PropError(prop, `must be an integer between ${min} and ${max} (got ${value})`);
  }
}

export function checkNumber(prop: string, value: number | undefined, min: number, max: number, opts: { minExclusive?: boolean } = {}): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  const tooLow = opts.minExclusive ? value <= min : value < min;
  if (Number.isNaN(value) || tooLow || value > max) {
    const range = opts.minExclusive ? `greater than ${min} and at most ${max}` : `between ${min} and ${max}`;
    throw new PropError(prop, `must be a number ${range} (got ${value})`);
  }
}

export function checkLength(prop: string, value: string | undefined, min: number, max: number): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (value.length < min || value.length > max) {
    throw new PropError(prop, `must be ${min === 0 ? 'at most' : `between ${min} and`} ${max} characters long (got ${value.length})`);
  }
}

export function checkPattern(prop: string, value: string | undefined, pattern: RegExp, expected: string): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!pattern.test(value)) {
    throw new PropError(prop, `must be ${expected} (got ${JSON.stringify(value)})`);
  }
}
