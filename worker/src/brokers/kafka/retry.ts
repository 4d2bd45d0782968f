/**
 * Runs an admin call again while Kafka answers with a retriable error (a coordinator still loading
 * after a restart, a leader moving), for up to `ms`; kafkajs retries connection errors, not those.
 */
export async function retrying<T>(call: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (let wait = 50; ; wait = Math.min(1000, wait * 2)) {
    try {
      return await call();
    } catch (error) {
      if (!(error as { retriable?: boolean }).retriable || Date.now() + wait > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
