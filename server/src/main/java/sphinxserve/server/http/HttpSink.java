package sphinxserve.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.generate.GenerationBackend;
import sphinxserve.server.generate.GenerationSink;
import sphinxserve.server.telemetry.RequestTelemetry;

/**
 * The response of one OpenAI-style HTTP request, fed by one {@link GenerationSink} per choice ({@link #choice}):
 * Server-Sent Events ({@code data: {chunk}} per delta, chunks of different choices interleaved as they come, an
 * optional usage chunk, {@code data: [DONE]}) or, without {@code stream}, one JSON body when every choice has ended.
 * Errors before the first byte are an HTTP status with OpenAI's error body; after it, an {@code error} event ends the
 * stream. Any choice failing fails the response and aborts the others. A final response with finish reason DEADLINE
 * (the request timeout) is a 504 / error event, ABORTED (the node is shutting down) a 503: neither is an OpenAI finish.
 *
 * <p>Threads, as gRPC's {@code StreamSink}: the engine thread only enqueues ({@link GenerationSink#emit},
 * {@link GenerationSink#fail}) and schedules a drain on {@code executor}; the drain formats JSON and writes, and for a
 * stream only while the channel {@link Channel#isWritable is writable} (Netty's {@code WriteBufferWaterMark}),
 * resuming on {@code channelWritabilityChanged} ({@link #writable}); everything queued meanwhile is coalesced into one
 * delta per choice. A work-in-progress counter keeps drains one at a time. A client that stops reading: once more
 * than {@code maxUnsentTokens} tokens wait behind a full write buffer, the request ends, its engine requests are
 * aborted (their KV blocks freed within a step), the connection closes and a log line says so.
 */
final class HttpSink {

  private static final Logger LOG = LoggerFactory.getLogger(HttpSink.class);

  /**
   * How the response is shaped, known once the body is parsed.
   *
   * @param format OpenAI's shapes per choice
   * @param stream Server-Sent Events instead of one body
   * @param includeUsage a last chunk with the usage ({@code stream_options.include_usage})
   * @param numChoices how many choices feed the response
   */
  record Plan(ChoiceFormat format, boolean stream, boolean includeUsage, int numChoices) {}

  /** A queued output of choice {@code choice}: a response, or the status failing it (request-wide when choice < 0). */
  private record Item(int choice, GenerateResponse response, Status status, String retryAfterSeconds) {}

  /** What a drain knows of one choice. */
  private static final class ChoiceState {
    boolean first = true;
    boolean finished;
    final StringBuilder text = new StringBuilder();
    final List<TokenLogprobs> logprobs = new ArrayList<>();
    FinishReason finish;
    Usage usage = Usage.getDefaultInstance();
  }

  private final Channel channel;
  private final Executor executor;
  private final GenerationBackend backend;
  private final Admitted head;
  private final RequestTelemetry telemetry;
  private final TenantLimiter limiter;
  private final int maxUnsentTokens;
  private final Duration requestTimeout;
  private final Runnable onEnd;
  private final Queue<Item> pending = new ConcurrentLinkedQueue<>();
  private final AtomicInteger wip = new AtomicInteger();
  private final AtomicInteger unsentTokens = new AtomicInteger();
  private final AtomicBoolean ended = new AtomicBoolean();
  private volatile Plan plan;
  private volatile List<Choice> choices = List.of();
  // Drain state: one drain at a time (wip), each seeing the last one's writes (the counter's happens-before).
  private boolean headWritten;
  private ChoiceState[] states;

  /**
   * @param limiter the tenant's limiter charged per token, or null
   * @param maxUnsentTokens tokens of a stream waiting behind a full write buffer before the request ends
   * @param requestTimeout {@code --http-request-timeout} (for the message of a DEADLINE finish), or null
   * @param onEnd runs once when the response has ended: completed, failed, or its connection gone
   */
  HttpSink(Channel channel, Executor executor, GenerationBackend backend, Admitted head, RequestTelemetry telemetry,
      TenantLimiter limiter, int maxUnsentTokens, Duration requestTimeout, Runnable onEnd) {
    this.channel = channel;
    this.executor = executor;
    this.backend = backend;
    this.head = head;
    this.telemetry = telemetry;
    this.limiter = limiter;
    this.maxUnsentTokens = maxUnsentTokens;
    this.requestTimeout = requestTimeout;
    this.onEnd = onEnd;
  }

  /** Shapes the response; before any choice starts. */
  void begin(Plan plan) {
    List<Choice> all = new ArrayList<>();
    for (int i = 0; i < plan.numChoices(); i++) all.add(new Choice(i));
    this.choices = List.copyOf(all);
    this.plan = plan;
  }

  /** The sink of choice {@code index}, given to {@code GenerateCalls.start}. */
  GenerationSink choice(int index) {
    return choices.get(index);
  }

  /** Whether the response has ended (nothing more is written; choices still starting should not start). */
  boolean hasEnded() {
    return ended.get();
  }

  /** Ends the whole request with {@code status} (before the choices started, or from the transport). */
  void fail(Status status) {
    fail(status, null);
  }

  /** As {@link #fail(Status)}, with a {@code Retry-After} header when answered before the first byte. */
  void fail(Status status, String retryAfterSeconds) {
    pending.add(new Item(-1, null, status, retryAfterSeconds));
    schedule();
  }

  /** The channel became writable (or not): a stalled drain may go on. */
  void writable() {
    schedule();
  }

  /** The client closed the connection: every choice is aborted, nothing more is written. */
  void connectionClosed() {
    if (ended.get()) return;
    abortChoices();
    end(Status.CANCELLED.withDescription("the client closed the connection"));
  }

  private void schedule() {
    if (wip.getAndIncrement() != 0) return;
    try {
      executor.execute(this::drain);
    } catch (java.util.concurrent.RejectedExecutionException e) { // the node is closing: nothing can be written any more
      channel.close();
      end(Status.UNAVAILABLE.withDescription("node is shutting down"));
    }
  }

  private void drain() {
    do {
      try {
        drainQueued();
      } catch (RuntimeException e) { // formatting failed: the response cannot go on
        LOG.warn("HTTP response of request {} failed", head.requestId(), e);
        abortChoices();
        channel.close();
        end(Status.INTERNAL.withDescription("the response could not be written: " + e));
      }
      if (ended.get()) pending.clear();
    } while (wip.decrementAndGet() != 0);
  }

  private void drainQueued() {
    boolean wrote = false;
    while (!ended.get()) {
      Plan p = plan;
      boolean stream = p != null && p.stream();
      Item next = pending.peek();
      if (next == null) break;
      if (next.response() != null && stream && !channel.isWritable()) {
        if (unsentTokens.get() > maxUnsentTokens) stalled();
        break; // resumes from writable()
      }
      pending.poll();
      if (next.status() != null) {
        failResponse(next.status(), next.retryAfterSeconds());
        return;
      }
      unsentTokens.addAndGet(-weight(next.response()));
      wrote |= write(p, next.choice(), coalesce(next));
    }
    if (wrote && !ended.get()) channel.flush();
  }

  /**
   * Merges the token deltas of the same choice queued right behind {@code first} into it (a slow client gets fewer,
   * larger deltas). The final response stays its own chunk: OpenAI's last delta is {@code {}} with the finish reason.
   */
  private GenerateResponse coalesce(Item first) {
    GenerateResponse r = first.response();
    if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED || !mergeable(pending.peek(), first.choice())) return r;
    GenerateResponse.Builder merged = r.toBuilder();
    while (mergeable(pending.peek(), first.choice())) {
      GenerateResponse m = pending.poll().response();
      unsentTokens.addAndGet(-weight(m));
      merged.setText(merged.getText() + m.getText()).addAllTokenIds(m.getTokenIdsList()).addAllLogprobs(m.getLogprobsList());
    }
    return merged.build();
  }

  /** Whether {@code next} is a token delta (not a final response, not a failure) of choice {@code choice}. */
  private static boolean mergeable(Item next, int choice) {
    return next != null && next.choice() == choice && next.response() != null
        && next.response().getFinishReason() == FinishReason.FINISH_REASON_UNSPECIFIED;
  }

  /** Formats and writes (or, unstreamed, keeps) choice {@code index}'s response {@code r}; whether anything was written. */
  private boolean write(Plan p, int index, GenerateResponse r) {
    FinishReason finish = r.getFinishReason();
    if (finish == FinishReason.DEADLINE) {
      failResponse(Status.DEADLINE_EXCEEDED.withDescription("request timed out"
          + (requestTimeout == null ? "" : ": it ran longer than the node's --http-request-timeout of " + requestTimeout.toMillis() + " ms")), null);
      return false;
    }
    if (finish == FinishReason.ABORTED) {
      failResponse(Status.UNAVAILABLE.withDescription("the request was aborted: the node is shutting down; retry on another node"), null);
      return false;
    }
    if (states == null) {
      states = new ChoiceState[p.numChoices()];
      for (int i = 0; i < states.length; i++) states[i] = new ChoiceState();
    }
    ChoiceState state = states[index];
    boolean last = finish != FinishReason.FINISH_REASON_UNSPECIFIED;
    if (last) {
      state.finished = true;
      state.finish = finish;
      state.usage = r.getUsage();
    }
    boolean all = last && allFinished();
    if (p.stream()) {
      if (!headWritten) writeStreamHead();
      channel.write(event(p.format().chunk(index, r, state.first)));
      state.first = false;
      if (all) {
        if (p.includeUsage()) channel.write(event(p.format().usageChunk(usages())));
        done();
        end(Status.OK);
      }
      return true;
    }
    state.text.append(r.getText());
    state.logprobs.addAll(r.getLogprobsList());
    if (!all) return false;
    List<OpenAiResponses.ChoiceResult> results = new ArrayList<>();
    for (int i = 0; i < states.length; i++) {
      results.add(new OpenAiResponses.ChoiceResult(i, states[i].text.toString(), states[i].finish, states[i].logprobs));
    }
    headWritten = true;
    FullHttpResponse response = HttpReplies.json(HttpResponseStatus.OK, p.format().complete(results, usages()));
    head.decorate(response.headers());
    channel.writeAndFlush(response);
    end(Status.OK);
    return false;
  }

  private boolean allFinished() {
    for (ChoiceState s : states) if (!s.finished) return false;
    return true;
  }

  private List<Usage> usages() {
    List<Usage> usages = new ArrayList<>();
    for (ChoiceState s : states) usages.add(s.usage);
    return usages;
  }

  /** Ends the response with {@code status}: an error response before the first byte, an error event after it. */
  private void failResponse(Status status, String retryAfterSeconds) {
    abortChoices();
    Plan p = plan;
    if (p != null) status = p.format().inHttpTerms(status); // param names the field the body sent
    if (!headWritten) {
      headWritten = true;
      FullHttpResponse response = HttpReplies.error(status);
      head.decorate(response.headers());
      if (retryAfterSeconds != null) {
        response.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfterSeconds);
      } else if (status.getCode() == Status.Code.RESOURCE_EXHAUSTED) {
        response.headers().set(HttpHeaderNames.RETRY_AFTER, "1");
      }
      channel.writeAndFlush(response);
    } else {
      channel.write(event(OpenAiResponses.error(status)));
      done();
    }
    end(status);
  }

  /** The client reads nothing while tokens pile up: end the request rather than buffer without bound. */
  private void stalled() {
    LOG.atWarn().addKeyValue("request_id", head.requestId()).addKeyValue("remote", channel.remoteAddress())
        .log("ending HTTP stream: its client stopped reading ({} tokens waiting behind a full write buffer, --http-max-unsent-tokens {});"
            + " its engine requests are aborted and the connection closed", unsentTokens.get(), maxUnsentTokens);
    abortChoices();
    channel.close();
    end(Status.CANCELLED.withDescription("the client stopped reading"));
  }

  private void writeStreamHead() {
    headWritten = true;
    HttpResponse response = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .set(HttpHeaderNames.CACHE_CONTROL, HttpHeaderValues.NO_CACHE)
        .set(HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderValues.CHUNKED);
    head.decorate(response.headers());
    channel.write(response);
  }

  private static DefaultHttpContent event(ObjectNode data) {
    return new DefaultHttpContent(Unpooled.wrappedBuffer(HttpReplies.event(data)));
  }

  private void done() {
    channel.write(new DefaultHttpContent(Unpooled.copiedBuffer("data: [DONE]\n\n", StandardCharsets.UTF_8)));
    channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
  }

  /** Aborts every choice's engine request (a no-op for those already finished or never submitted). */
  private void abortChoices() {
    for (Choice c : choices) {
      c.aborted = true;
      backend.abort(c);
    }
  }

  private void end(Status status) {
    if (!ended.compareAndSet(false, true)) return;
    telemetry.closed(status);
    onEnd.run();
  }

  /** Tokens a response stands for in the unsent count (at least 1, so empty final responses count too). */
  private static int weight(GenerateResponse r) {
    return Math.max(1, r.getTokenIdsCount());
  }

  /** The sink of one choice: enqueues, tagged with its index, and schedules a drain. */
  private final class Choice implements GenerationSink {
    private final int index;
    private volatile boolean aborted;

    Choice(int index) {
      this.index = index;
    }

    @Override
    public void emit(GenerateResponse response) {
      if (ended.get()) return;
      if (limiter != null) limiter.chargeTokens(response.getTokenIdsCount());
      unsentTokens.addAndGet(weight(response));
      pending.add(new Item(index, response, null, null));
      schedule();
    }

    @Override
    public void fail(Status status) {
      if (ended.get()) return;
      pending.add(new Item(index, null, status, null));
      schedule();
    }

    @Override
    public boolean isCancelled() {
      return aborted || ended.get();
    }
  }
}
