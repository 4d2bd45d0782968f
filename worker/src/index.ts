/** Taskfleet: Celery-style background tasks for TypeScript. */
export const version = '0.1.0';
