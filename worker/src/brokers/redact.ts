import { isKafkaUrl } from './kafka/config.ts';

/**
 * A broker or backend URL as it may be logged: a Redis URL without its password; a Kafka URL as it is
 * (it never carries credentials: those come from the environment, see kafka/config.ts).
 */
export function redact(url: string): string {
  if (isKafkaUrl(url)) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
