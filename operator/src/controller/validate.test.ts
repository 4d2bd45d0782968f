import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskQueue, TaskQueueSpec } from '../api/types.ts';
import { specRefusal } from './validate.ts';

const tq = (spec: Partial<TaskQueueSpec>): TaskQueue => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name: 'emails', namespace: 'shop' },
  spec: { broker: { redis: { url: 'redis://r:6379' } }, ...spec },
});

test('a spec admitted under an older CRD is refused for good; a valid one is not', () => {
  assert.equal(specRefusal(tq({})), undefined);
  const badName = specRefusal(tq({ scaleTargetRef: { name: '../../kube-system/deployments/coredns' } }));
  assert.equal(badName?.reason, 'InvalidSpec');
  assert.equal(badName?.retry, false);
  const schedules = [{ name: 'nightly', cron: '0 3 * * *', task: 'report' }];
  const kafka = specRefusal(tq({ broker: { kafka: { brokers: ['k:9092'] } }, schedules }));
  assert.equal(kafka?.reason, 'SchedulesNeedRedis');
  assert.equal(kafka?.retry, false);
  assert.equal(specRefusal(tq({ schedules })), undefined);
});
