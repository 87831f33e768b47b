// Filter chain choice by SNI: exact, then the longest wildcard, then the catch-all.

import assert from 'node:assert/strict';
import type { SecureContext } from 'node:tls';
import { createSniSelector } from '../../../dataplane/tls/sni-selector.js';

interface FakeChain {
  name: string;
  serverNames: string[];
  contextProvider: () => SecureContext | Error;
}

const fakeContext = (name: string) => ({ name }) as unknown as SecureContext;
const chain = (name: string, serverNames: string[], failure?: string): FakeChain => ({
  name,
  serverNames,
  contextProvider: () => (failure ? new Error(failure) : fakeContext(name)),
});

describe('tls: SNI selector', () => {
  const chains = [
    chain('wide', ['*.example.com']),
    chain('api', ['api.example.com']),
    chain('deep', ['*.eu.example.com']),
    chain('first-exact', ['dup.example.com']),
    chain('second-exact', ['dup.example.com', 'Mixed.Example.org']),
    chain('any', []),
  ];
  const selector = createSniSelector(chains);
  const pick = (sni: string | undefined) => selector.select(sni)?.name;

  it('prefers an exact name over any wildcard', () => {
    assert.equal(pick('api.example.com'), 'api');
  });

  it('prefers the longest wildcard, which covers several labels', () => {
    assert.equal(pick('shop.eu.example.com'), 'deep');
    assert.equal(pick('a.b.eu.example.com'), 'deep');
    assert.equal(pick('shop.example.com'), 'wide');
    assert.equal(pick('example.com'), 'any', 'a wildcard needs at least one label before the suffix');
  });

  it('lets the first chain win a name listed twice, and ignores case and a trailing dot', () => {
    assert.equal(pick('dup.example.com'), 'first-exact');
    assert.equal(pick('mixed.example.org.'), 'second-exact');
    assert.equal(pick('API.EXAMPLE.COM'), 'api');
  });

  it('sends unknown names and clients without SNI to the chain with no server names', () => {
    assert.equal(pick('other.net'), 'any');
    assert.equal(pick(undefined), 'any');
  });

  it('fails the handshake when nothing matches or the chain cannot serve', () => {
    const strict = createSniSelector([chain('api', ['api.example.com']), chain('broken', ['broken.example.com'], 'Secret ns/broken is not available')]);
    const outcomes: Array<[string, Error | null, unknown]> = [];
    for (const sni of ['api.example.com', 'nope.example.com', 'broken.example.com']) strict(sni, (err, ctx) => outcomes.push([sni, err, ctx]));
    assert.equal(outcomes[0]![1], null);
    assert.deepEqual(outcomes[0]![2], { name: 'api' });
    assert.match(String(outcomes[1]![1]), /no TLS server for SNI "nope\.example\.com"/);
    assert.match(String(outcomes[2]![1]), /Secret ns\/broken is not available/);
    assert.equal(strict.select(undefined), undefined);
  });

  it('treats "*" as a catch-all', () => {
    assert.equal(createSniSelector([chain('star', ['*'])]).select('x.y')?.name, 'star');
  });
});
