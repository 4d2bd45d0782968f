/** Taskfleet: Celery-style background tasks for TypeScript. */
export { Taskfleet, type TaskfleetOptions } from './app.ts';
export type { Backlog, Broker, Consumer, ConsumerOptions, DeadLetter, Delivery, Settlement } from './brokers/broker.ts';
export { redact, redactText } from './brokers/redact.ts';
export { Chain, Chord, chain, chord, Group, group } from './canvas.ts';
export type { WorkerHeartbeat } from './control.ts';
export {
  BrokerUnavailableError,
  CanvasError,
  ChordFailedError,
  ConfigError,
  EtaBeyondHorizonError,
  GroupFailedError,
  NoResultBackendError,
  type RecordedError,
  ResultTimeoutError,
  ResultTooLargeError,
  SerializationError,
  SoftTimeLimitExceededError,
  TaskFailedError,
  TaskfleetError,
  TaskRevokedError,
  TimeLimitExceededError,
  UnrecoverableError,
  WorkflowError,
} from './errors.ts';
export { GroupResult } from './group-result.ts';
export {
  DEFAULT_HISTORY,
  type HistoryEntry,
  type HistoryOptions,
  type HistoryState,
} from './history/entry.ts';
export type { HistoryPage, HistoryQuery, HistoryStore } from './history/store.ts';
export { MAX_CANVAS_DEPTH, MAX_CANVAS_SIGNATURES } from './message/canvas-spec.ts';
export type {
  ChordFailure,
  ChordRef,
  ChordSpec,
  DeadLetterReason,
  Envelope,
  Flow,
  GroupSpec,
  NodeSpec,
  SignatureSpec,
} from './message/envelope.ts';
export type { JsonValue } from './message/json.ts';
export { createLogger, type Logger, type LogLevel, parseLogLevel } from './observe/logger.ts';
export { type HealthSource, serveObservability } from './observe/server.ts';
export { Task } from './registered-task.ts';
export { AsyncResult } from './result.ts';
export type { ResultRecord, TaskState } from './results/result.ts';
export { MaxRetriesExceededError } from './runtime/execute.ts';
export { VERSION as version, Worker, type WorkerOptions } from './runtime/worker.ts';
export {
  DEFAULT_MISSED_AFTER_MS,
  type MissedTickPolicy,
  type Schedule,
  type ScheduleCallOptions,
  type ScheduleDefinition,
  type ScheduledSignature,
} from './schedule/schedule.ts';
export type { ApplyOptions, Canvas, Handler, Signature, TaskContext, TaskFailure, TaskOptions } from './task.ts';
