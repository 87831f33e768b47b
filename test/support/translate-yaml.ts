// Translates a YAML document set the way a proxy would, for translator and feature tests.
// An optional document `kind: ProxyIdentity` sets the proxy's namespace, labels and port map.

import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../dataplane/source/yaml-files.js';
import { ObjectStore } from '../../dataplane/store/object-store.js';
import { translate } from '../../dataplane/translate/index.js';

export function translateYaml(text: string, file = 'test.yaml') {
  const identityDoc = parseAllDocuments(text)
    .map((d) => (Array.isArray(d) ? undefined : d.toJS()))
    .find((o) => o?.kind === 'ProxyIdentity');
  const identity = {
    namespace: identityDoc?.namespace ?? 'istio-system',
    labels: identityDoc?.labels ?? { istio: 'ingressgateway', app: 'istio-ingressgateway' },
    portMap: identityDoc?.portMap ? new Map(Object.entries(identityDoc.portMap).map(([k, v]) => [Number(k), Number(v)])) : undefined,
  };
  const { objects, problems } = parseConfigText(text, file, 'default');
  assert.deepEqual(problems, [], 'the golden input must parse');
  const store = new ObjectStore();
  store.replaceWhere(() => true, objects);
  return translate(store.contents(), identity, { version: 1 });
}

