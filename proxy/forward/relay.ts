// The upstream response body on its way to the client: what `upstream.pipe(res)` did, for the
// one pair of streams a proxy has, and counting the bytes the access log reports.
//
// stream.pipe is general: per call it adds seven listeners across both streams, emits `pipe`,
// and at the end emits `unpipe` and removes them all again, and counting bytes beside it
// took an eighth listener that made every chunk's `data` event clone its listener array.
// Here a response takes two listeners. Errors and aborts stay where they were handled
// before: the listener destroys one side when the other closes early.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class ResponseRelay {
  /** Body bytes handed to the client's response so far. */
  bytes = 0;

  constructor(private readonly upstream: IncomingMessage, private readonly res: ServerResponse) {
    upstream.on('data', this.onData);
    upstream.on('end', this.onEnd);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.bytes += chunk.length;
    // Backpressure: a client reading slower than the upstream sends pauses the upstream until
    // the client's socket has drained (a destroyed response also says false: the listener
    // destroys the upstream then).
    if (!this.res.write(chunk)) {
      this.upstream.pause();
      this.res.once('drain', () => this.upstream.resume());
    }
  };

  private readonly onEnd = (): void => {
    // Only a chunked body carries trailers; they go out with the last chunk.
    if (this.upstream.rawTrailers.length > 0) this.res.addTrailers(this.upstream.trailers);
    this.res.end();
  };
}
