// Layer-4 route selection: tcp rules by gateway port and destination subnets, tls rules by
// SNI pattern on top, and the weighted draw.

import assert from 'node:assert/strict';
import type { TcpRoute, TlsRoute } from '../../../dataplane/snapshot/types.js';
import { compileTcpRoutes, compileTlsRoutes, pickL4Destination, selectL4Route } from '../../../dataplane/serve/l4/l4-routes.js';

function tcp(name: string, extra: Partial<TcpRoute> = {}): TcpRoute {
  return {
    name,
    virtualService: 'default/vs',
    destinationSubnets: [],
    destinations: [{ cluster: `c-${name}`, host: `${name}.internal`, weight: 100 }],
    totalWeight: 100,
    ...extra,
  };
}

function tlsRoute(name: string, sniHosts: string[], extra: Partial<TlsRoute> = {}): TlsRoute {
  return { ...tcp(name, extra), sniHosts };
}

describe('serve/l4: route selection', () => {
  it('tcp: the first rule whose port matches; a rule without a port matches every port', () => {
    const routes = compileTcpRoutes([tcp('a', { port: 9000 }), tcp('b', { port: 9001 }), tcp('any')]);
    assert.equal(selectL4Route(routes, { gatewayPort: 9000, localAddress: '10.0.0.1' })?.name, 'a');
    assert.equal(selectL4Route(routes, { gatewayPort: 9001, localAddress: '10.0.0.1' })?.name, 'b');
    assert.equal(selectL4Route(routes, { gatewayPort: 9002, localAddress: '10.0.0.1' })?.name, 'any');
    assert.equal(selectL4Route(compileTcpRoutes([tcp('a', { port: 9000 })]), { gatewayPort: 1, localAddress: '10.0.0.1' }), undefined);
  });

  it('tcp: destinationSubnets match the address the client connected to (IPv4, IPv4-mapped IPv6, IPv6)', () => {
    const routes = compileTcpRoutes([tcp('inside', { destinationSubnets: ['10.1.0.0/16', '2001:db8::/32'] }), tcp('rest')]);
    assert.equal(selectL4Route(routes, { gatewayPort: 1, localAddress: '10.1.2.3' })?.name, 'inside');
    assert.equal(selectL4Route(routes, { gatewayPort: 1, localAddress: '::ffff:10.1.2.3' })?.name, 'inside');
    assert.equal(selectL4Route(routes, { gatewayPort: 1, localAddress: '2001:db8::7' })?.name, 'inside');
    assert.equal(selectL4Route(routes, { gatewayPort: 1, localAddress: '10.2.0.1' })?.name, 'rest');
    assert.equal(selectL4Route(routes, { gatewayPort: 1, localAddress: undefined })?.name, 'rest');
  });

  it('tls: exact and wildcard SNI patterns, case and trailing dot ignored; "*" takes any SNI', () => {
    const routes = compileTlsRoutes([tlsRoute('exact', ['a.example.com']), tlsRoute('wild', ['*.example.com'])]);
    const pick = (sni: string | undefined) => selectL4Route(routes, { gatewayPort: 443, localAddress: '127.0.0.1', sni })?.name;
    assert.equal(pick('a.example.com'), 'exact');
    assert.equal(pick('A.Example.COM.'), 'exact');
    assert.equal(pick('b.example.com'), 'wild');
    assert.equal(pick('x.y.example.com'), 'wild');
    assert.equal(pick('example.com'), undefined);
    assert.equal(pick(undefined), undefined);
    const any = compileTlsRoutes([tlsRoute('any', ['*'])]);
    assert.equal(selectL4Route(any, { gatewayPort: 443, localAddress: '127.0.0.1', sni: 'whatever.test' })?.name, 'any');
  });

  it('weighted draw over cumulative weights; zero weights never picked', () => {
    const [route] = compileTlsRoutes([
      tlsRoute('split', ['*'], {
        destinations: [
          { cluster: 'v1', host: 'v1', weight: 70 },
          { cluster: 'none', host: 'none', weight: 0 },
          { cluster: 'v2', host: 'v2', weight: 30 },
        ],
        totalWeight: 100,
      }),
    ]);
    assert.equal(pickL4Destination(route!, 0)?.cluster, 'v1');
    assert.equal(pickL4Destination(route!, 0.69)?.cluster, 'v1');
    assert.equal(pickL4Destination(route!, 0.7)?.cluster, 'v2');
    assert.equal(pickL4Destination(route!, 0.999)?.cluster, 'v2');
    const [single] = compileTcpRoutes([tcp('one', { destinations: [{ cluster: 'only', host: 'only', weight: 0 }], totalWeight: 0 })]);
    assert.equal(pickL4Destination(single!, 0.5)?.cluster, 'only');
  });
});
