// What the Node client scripts share: the constants of the steps and the normalised
// output (one JSON line per step, the same shapes as tests/clients/python/compat.py).

/** Longer than the proxy's PROXY_IDLE_TIMEOUT_MS in the test (500 ms). */
export const IDLE_PAUSE_MS = 1000;
/** Keys written and read back concurrently through the pool. */
export const POOL_KEYS = 40;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A reply (or an error) as plain JSON, the same for equal replies. */
export function norm(value) {
  if (value instanceof Error) {
    return { error: value.constructor.name, message: value.message };
  }
  if (value === undefined) return null;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(norm);
  if (value instanceof Set) {
    return { set: [...value].map((v) => JSON.stringify(norm(v))).sort() };
  }
  if (value instanceof Map) {
    return { map: sortPairs([...value].map(([k, v]) => [norm(k), norm(v)])) };
  }
  if (value !== null && typeof value === 'object') {
    return { map: sortPairs(Object.entries(value).map(([k, v]) => [k, norm(v)])) };
  }
  return value;
}

function sortPairs(pairs) {
  return pairs.sort((a, b) => {
    const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

export function emit(step, result) {
  process.stdout.write(`${JSON.stringify({ step, result: norm(result) })}\n`);
}

/** The result of `f()`, or the error it throws (an error reply is a result too). */
export async function settle(f) {
  try {
    return await f();
  } catch (e) {
    return e;
  }
}

/** `promise`'s result (or its error), or 'timeout' where it does not settle within `ms`. */
export function within(ms, promise) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  return Promise.race([settle(() => promise), timeout]).finally(() => clearTimeout(timer));
}

// Pub/sub: one subscriber to a channel, one to a pattern, and what a third connection
// publishes, in order; the last message, on the subscribed channel, reaches both and ends
// their reading.
export const PUBSUB_CHANNEL = 'news:sport';
export const PUBSUB_PATTERN = 'news:*';
export const PUBLISHED = [
  ['news:sport', 'goal'],
  ['news:weather', 'rain'],
  ['other', 'unseen'],
  ['news:sport', ''],
  ['news:sport', 'caf\u00e9 \u6f22'],
  ['news:sport', 'end'],
];
export const PUBSUB_WAIT_MS = 5000;

/** A subscriber's messages: `push` records one (its payload last); `end` resolves once the
 * last message published has come. */
export function receiver() {
  const got = [];
  let ended;
  const end = new Promise((resolve) => {
    ended = resolve;
  });
  const push = (message) => {
    got.push(message);
    if (message.at(-1) === PUBLISHED.at(-1)[1]) ended();
  };
  return { got, end, push };
}

/** What a receiver got, ending in 'timeout' where the last message did not come in time. */
export async function receivedUntilEnd({ got, end }) {
  return (await within(PUBSUB_WAIT_MS, end)) === 'timeout' ? [...got, 'timeout'] : got;
}

/** PUBLISH's count of receivers: through the proxy all its subscribers of a channel are one
 * receiver in Redis (one subscriber connection for all), so only whether each message
 * reached someone is compared. */
export async function publishAll(publish) {
  const out = [];
  for (const [channel, message] of PUBLISHED) out.push((await publish(channel, message)) >= 1);
  return out;
}

// Client-side caching (a client's own cache, kept fresh by RESP3 CLIENT TRACKING pushes):
// how long a read may keep answering the old value after another connection's write. The
// push comes at once from Redis, through the proxy when its own invalidation stream hears
// of the write (asynchronously), so a few reads may still be served the old value from
// the client's cache meanwhile.
export const CSC_WAIT_MS = 5000;
export const CSC_RETRY_MS = 10;
/** Reads more after the new value shows: none may answer the old one again. */
export const CSC_READS_AFTER = 3;

/** `read()` until it answers `want` (or CSC_WAIT_MS pass), then CSC_READS_AFTER more:
 * the last value, whether `want` came in time, whether a read answered something other
 * than `old` or `want`, and whether one answered `old` after `want` had come; `reads` is
 * how many reads were made. */
export async function readUntilChanged(read, old, want) {
  const deadline = Date.now() + CSC_WAIT_MS;
  let value = await read();
  let reads = 1;
  const seen = [value];
  while (value !== want && Date.now() < deadline) {
    await sleep(CSC_RETRY_MS);
    value = await read();
    reads += 1;
    seen.push(value);
  }
  const changed = value === want;
  for (let i = 0; changed && i < CSC_READS_AFTER; i++) {
    value = await read();
    reads += 1;
    seen.push(value);
  }
  const after = seen.slice(seen.indexOf(want) + 1);
  return {
    result: {
      final: value,
      changed_within_bound: changed,
      other_value_seen: seen.some((v) => v !== old && v !== want),
      old_value_after_new: changed && after.includes(old),
    },
    reads,
  };
}
