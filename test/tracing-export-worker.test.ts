// The export worker keeps one instance of each class the protobuf serializer makes per batch,
// so that its optimized code outlives the gap between batches. Those classes sit in internal
// files of the pinned @opentelemetry/otlp-transformer; this fails when an upgrade moves them.
import t from 'tap';
import { serializerPerBatchClasses } from '../proxy/tracing/export-worker';

t.test('the serializer classes the export worker keeps alive are where it looks for them', async (t) => {
  const classes = serializerPerBatchClasses();
  t.same(classes.map((c) => c.name), ['ProtobufWriter', 'ProtobufSizeEstimator']);
  for (const { path, name } of classes) {
    const Class = (require(path) as Record<string, new (size: number) => { pos: number }>)[name];
    t.type(Class, 'function', `${name} is exported by ${path}`);
    t.equal(new Class!(16).pos, 0, `${name} can be made as the worker makes it`);
  }
});
