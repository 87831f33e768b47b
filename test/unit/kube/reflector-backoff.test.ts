// The reflector's retry policy: jittered exponential backoff, capped at 5 s while the apiserver
// is away or restarting (so a gateway converges soon after it returns) and at 30 s for answered errors.

import assert from 'node:assert/strict';
import { retryDelayMs } from '../../../kube/reflector.js';

describe('reflector retry backoff', () => {
  it('grows exponentially with jitter between 0.5× and 1.5× of the base', () => {
    for (let i = 0; i < 200; i++) {
      const first = retryDelayMs(1, false);
      assert.ok(first >= 200 && first <= 600, `first retry ${first}`);
      const third = retryDelayMs(3, false);
      assert.ok(third >= 800 && third <= 2400, `third retry ${third}`);
    }
  });

  it('caps transient failures (apiserver away or restarting) at 5 s (×1.5 jitter) and answered errors at 30 s', () => {
    for (let i = 0; i < 200; i++) {
      assert.ok(retryDelayMs(50, true) <= 7_500);
      assert.ok(retryDelayMs(50, true) >= 2_500);
      assert.ok(retryDelayMs(50, false) <= 45_000);
      assert.ok(retryDelayMs(50, false) >= 15_000);
    }
  });
});
