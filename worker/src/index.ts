/** Taskfleet: Celery-style background tasks for TypeScript. */
export { Taskfleet, type TaskfleetOptions } from './app.ts';
export type { Backlog, Broker, Consumer, ConsumerOptions, DeadLetter, Delivery, Settlement } from './brokers/broker.ts';
export { RedisBroker } from './brokers/redis/broker.ts';
export { chain } from './canvas.ts';
export { Control, type WorkerHeartbeat } from './control.ts';
export {
  ConfigError,
  NoResultBackendError,
  type RecordedError,
  ResultTimeoutError,
  SerializationError,
  SoftTimeLimitExceededError,
  TaskFailedError,
  TaskfleetError,
  TaskRevokedError,
  TimeLimitExceededError,
  UnrecoverableError,
} from './errors.ts';
export type { DeadLetterReason, Envelope, SignatureSpec } from './message/envelope.ts';
export type { JsonValue } from './message/json.ts';
export { createLogger, type Logger, type LogLevel, parseLogLevel } from './observe/logger.ts';
export { type HealthSource, serveObservability } from './observe/server.ts';
export { Task } from './registered-task.ts';
export { AsyncResult } from './result.ts';
export type { ResultRecord, TaskState } from './results/result.ts';
export { MaxRetriesExceededError } from './runtime/execute.ts';
export { VERSION as version, Worker, type WorkerOptions } from './runtime/worker.ts';
export type { ApplyOptions, Handler, Signature, TaskContext, TaskOptions } from './task.ts';
