/** The Taskfleet operator. */
export { version } from 'taskfleet';
