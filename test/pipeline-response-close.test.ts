// onResponseClose: how a stage learns that the client's response is over without a 'close'
// listener of its own (proxy/pipeline/types.ts). The listener calls ctx.responseClosed once;
// test/tracing-local-replies.test.ts fails without that call (its spans would never end).
import t from 'tap';
import { onResponseClose, RequestContext } from '../proxy/pipeline';

function ctx(): RequestContext {
  return { responseClosed: undefined } as unknown as RequestContext;
}

t.test('one callback is stored as it is', async (t) => {
  const c = ctx();
  const fn = () => {};
  onResponseClose(c, fn);
  t.equal(c.responseClosed, fn);
});

t.test('callbacks registered one after another all run, in the order registered', async (t) => {
  const c = ctx();
  const seen: string[] = [];
  onResponseClose(c, () => seen.push('inbound span'));
  onResponseClose(c, () => seen.push('second'));
  onResponseClose(c, () => seen.push('third'));
  c.responseClosed!();
  t.same(seen, ['inbound span', 'second', 'third']);
});
