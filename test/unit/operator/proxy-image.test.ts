// The operator's default proxy image (issue 13 item 17): without --proxy-image it used to
// reject every GatewayDeployment that sets no spec.image; now it defaults to its own release's
// image, the same one the chart passes (image.repository : appVersion).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { proxyImage } from '../../../cli/operator-command.js';
import { releaseImage } from '../../../cli/release.js';
import { repoRoot } from '../../support/repo-root.js';

function chartDefaultImage(): string {
  const chart = parse(readFileSync(join(repoRoot(), 'charts', 'portway', 'Chart.yaml'), 'utf8')) as { appVersion: string };
  const values = parse(readFileSync(join(repoRoot(), 'charts', 'portway', 'values.yaml'), 'utf8')) as { image: { repository: string; tag: string } };
  return `${values.image.repository}:${values.image.tag || chart.appVersion}`;
}

describe('operator: the default proxy image', () => {
  it('without --proxy-image or $PORTWAY_PROXY_IMAGE: the image the chart would pass (its release)', () => {
    assert.equal(proxyImage(undefined, {}), chartDefaultImage());
    assert.equal(releaseImage(), chartDefaultImage());
  });

  it('the flag wins over the variable, the variable over the release image', () => {
    assert.equal(proxyImage('registry.local/p:1', { PORTWAY_PROXY_IMAGE: 'registry.local/p:2' }), 'registry.local/p:1');
    assert.equal(proxyImage(undefined, { PORTWAY_PROXY_IMAGE: 'registry.local/p:2' }), 'registry.local/p:2');
  });
});
