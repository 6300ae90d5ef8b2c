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
