// An answer's speed as LM Studio shows it: tokens over the time from the
// first token to the last.

/** Tokens per second; when the whole answer came at once (a tool call is
 * sent when it is complete) the time from the request on is all there is. */
export function tokensPerSecond(
  tokens: number | undefined,
  startedMs: number,
  firstMs: number | undefined,
  endedMs: number,
): number | undefined {
  if (!tokens || firstMs === undefined) return undefined;
  const streamed = endedMs - firstMs;
  const seconds = (streamed >= 50 ? streamed : endedMs - startedMs) / 1000;
  return seconds > 0 ? tokens / seconds : undefined;
}
