/** The web console as a library (`taskfleet/console`): what `taskfleet console` runs, for embedding it. */
export { ApiError, ConsoleApi, type ConsoleApiOptions, type TaskQueueSource } from './api.ts';
export { type AuthConfig, authFromEnv, type Principal } from './auth.ts';
export type * from './contract.ts';
export { taskQueuesFrom } from './kubernetes.ts';
export { type ConsoleServer, type ConsoleServerOptions, startConsole } from './server.ts';
