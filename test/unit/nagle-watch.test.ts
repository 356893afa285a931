import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NagleWatch } from '../../src/client/requesting/nagle-watch.js';

describe('nagle watch', () => {
  it('nagle watch - steps made together that arrive ~40 ms apart three times in a minute make one warning naming the fix', () => {
    const warnings: string[] = [];
    const watch = new NagleWatch((message) => warnings.push(message));
    for (const at of [0, 1000, 2000, 3000]) watch.steps({ ts: 100 + at, at }, { ts: 101 + at, at: at + 42 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /holds back messages sent together by ~41 ms.*set_tcp_nodelay true/);
  });

  it('nagle watch - steps made apart, or arriving together, or too rarely, say nothing', () => {
    const warnings: string[] = [];
    const watch = new NagleWatch((message) => warnings.push(message));
    for (let i = 0; i < 5; i++) watch.steps({ ts: 0, at: i * 10 }, { ts: 40, at: i * 10 + 42 }); // made 40 ms apart: a slow handler
    for (let i = 0; i < 5; i++) watch.steps({ ts: 0, at: 0 }, { ts: 1, at: 3 }); // arrived together
    for (const at of [0, 70_000, 140_000]) watch.steps({ ts: at, at }, { ts: at + 1, at: at + 45 }); // one a minute
    assert.deepEqual(warnings, []);
  });
});
