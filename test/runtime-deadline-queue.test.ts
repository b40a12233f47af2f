// The shared deadline queue behind the timeout and per-try timeout stages: one timer for
// many same-length deadlines, expiring in order, leaving no timer behind when empty.
import t from 'tap';
import { FakeClock } from './helpers/fake-clock';
import { DeadlineQueue, DeadlineQueues } from '../proxy/runtime/deadline-queue';

t.test('deadlines expire in order, each at its own time, on one timer', async (t) => {
  const clock = new FakeClock();
  const q = new DeadlineQueue(clock, 100);
  const fired: Array<[string, number]> = [];
  q.add(() => fired.push(['a', clock.now()]));
  clock.advance(30);
  q.add(() => fired.push(['b', clock.now()]));
  clock.advance(30);
  q.add(() => fired.push(['c', clock.now()]));
  t.equal(clock.pending, 1, 'three deadlines, one timer');
  clock.advance(500);
  t.same(fired, [['a', 100], ['b', 130], ['c', 160]]);
  t.equal(clock.pending, 0, 'no timer left once the queue is empty');
  t.equal(q.size, 0);
});

t.test('cancelled deadlines never fire; cancelling the head moves the timer on', async (t) => {
  const clock = new FakeClock();
  const q = new DeadlineQueue(clock, 100);
  const fired: string[] = [];
  const a = q.add(() => fired.push('a'));
  clock.advance(10);
  const b = q.add(() => fired.push('b'));
  clock.advance(10);
  q.add(() => fired.push('c'));
  q.cancel(a);
  q.cancel(b);
  q.cancel(b); // twice is harmless
  t.equal(q.size, 1);
  clock.advance(99);
  t.same(fired, [], 'c is not due before 120');
  clock.advance(1);
  t.same(fired, ['c']);
  const d = q.add(() => fired.push('d'));
  q.cancel(d);
  t.equal(clock.pending, 0, 'cancelling the last deadline clears the timer');
  clock.advance(1000);
  t.same(fired, ['c']);
});

t.test('a deadline added while another expires is timed from its own start', async (t) => {
  const clock = new FakeClock();
  const q = new DeadlineQueue(clock, 50);
  const fired: Array<[string, number]> = [];
  q.add(() => {
    fired.push(['first', clock.now()]);
    q.add(() => fired.push(['retry', clock.now()]));
  });
  clock.advance(200);
  t.same(fired, [['first', 50], ['retry', 100]]);
  t.equal(clock.pending, 0);
});

t.test('DeadlineQueues keeps one queue per length', async (t) => {
  const queues = new DeadlineQueues(new FakeClock());
  t.equal(queues.get(100), queues.get(100));
  t.not(queues.get(100), queues.get(200));
  t.equal(queues.get(200).ms, 200);
});
