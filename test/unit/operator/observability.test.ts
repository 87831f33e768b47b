// The operator's JSON logger and its metrics registry, without a cluster (the e2e tests check
// them on a running operator).

import assert from 'node:assert/strict';
import { Logger, parseLogLevel } from '../../../operator/controller/log.js';
import { OperatorMetrics } from '../../../operator/controller/metrics.js';

describe('operator JSON logs', () => {
  const capture = (level: 'debug' | 'info' | 'warn' | 'error') => {
    const lines: string[] = [];
    const logger = new Logger({ level, write: (l) => lines.push(l), now: () => new Date('2026-01-02T03:04:05.000Z') });
    return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
  };

  it('writes one JSON object per line: time, level, msg first, then fields', () => {
    const { logger, lines, parsed } = capture('info');
    logger.info('created', { gatewaydeployment: 'ns/gw', kind: 'Service' });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.endsWith('}\n') && !lines[0]!.slice(0, -1).includes('\n'));
    assert.deepEqual(Object.keys(parsed()[0]!), ['time', 'level', 'msg', 'gatewaydeployment', 'kind']);
    assert.deepEqual(parsed()[0], { time: '2026-01-02T03:04:05.000Z', level: 'info', msg: 'created', gatewaydeployment: 'ns/gw', kind: 'Service' });
  });

  it('drops lines below its level', () => {
    const { logger, parsed } = capture('warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    assert.deepEqual(parsed().map((l) => l.msg), ['w', 'e']);
  });

  it('child loggers carry their fields; errors become their message; reserved keys cannot be overwritten', () => {
    const { logger, parsed } = capture('debug');
    logger.child({ gatewaydeployment: 'a/b' }).error('failed', { error: new Error('boom'), msg: 'spoof', level: 'debug' });
    assert.deepEqual(parsed()[0], { time: '2026-01-02T03:04:05.000Z', level: 'error', msg: 'failed', gatewaydeployment: 'a/b', error: 'boom' });
  });

  it('parses PORTWAY_LOG_LEVEL values, falling back on unknown ones', () => {
    assert.equal(parseLogLevel(' DEBUG '), 'debug');
    assert.equal(parseLogLevel('loud'), 'info');
    assert.equal(parseLogLevel(undefined, 'warn'), 'warn');
  });
});

describe('operator metrics', () => {
  it('counts reconciles by result with their duration, on a registry of its own', async () => {
    let depth = 7;
    const m = new OperatorMetrics({ queueDepth: () => depth, processMetrics: false });
    m.startReconcile()('success');
    m.startReconcile()('success');
    m.startReconcile()('error');
    m.errors.inc({ operation: 'apply' });
    const text = await m.registry.metrics();
    assert.match(text, /^portway_operator_reconcile_total\{result="success"\} 2$/m);
    assert.match(text, /^portway_operator_reconcile_total\{result="error"\} 1$/m);
    assert.match(text, /^portway_operator_reconcile_total\{result="conflict"\} 0$/m);
    assert.match(text, /^portway_operator_reconcile_duration_seconds_count\{result="success"\} 2$/m);
    assert.match(text, /^portway_operator_errors_total\{operation="apply"\} 1$/m);
    assert.match(text, /^portway_operator_workqueue_depth 7$/m);
    depth = 0;
    assert.match(await m.registry.metrics(), /^portway_operator_workqueue_depth 0$/m);
    // A second instance shares nothing with the first.
    assert.match(await new OperatorMetrics({ processMetrics: false }).registry.metrics(), /^portway_operator_reconcile_total\{result="success"\} 0$/m);
  });
});
