// Capped exponential backoff with jitter, for reconnecting a Subscribe stream.

export const DEFAULT_RECONNECT = Object.freeze({ initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.5 });

export class Backoff {
  constructor(settings = {}, random = Math.random) {
    this.settings = { ...DEFAULT_RECONNECT, ...settings };
    const { initialMs, maxMs, multiplier, jitter } = this.settings;
    if (!(initialMs > 0 && maxMs >= initialMs && multiplier >= 1 && jitter >= 0 && jitter <= 1)) {
      throw new RangeError('redrive: reconnect needs 0 < initialMs <= maxMs, multiplier >= 1, 0 <= jitter <= 1');
    }
    this.random = random;
    this.failures = 0;
  }

  /** The next delay: min(maxMs, initialMs * multiplier^n), less up to `jitter` of it at random. */
  next() {
    const { initialMs, maxMs, multiplier, jitter } = this.settings;
    const base = Math.min(maxMs, initialMs * multiplier ** this.failures);
    this.failures++;
    return Math.round(base * (1 - jitter * this.random()));
  }

  reset() {
    this.failures = 0;
  }
}
