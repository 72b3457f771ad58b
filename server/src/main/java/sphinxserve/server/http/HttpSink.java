package sphinxserve.server.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sphinxserve.proto.v1.FinishReason;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.TokenLogprobs;
import dev.sphinxserve.proto.v1.Usage;
import io.grpc.Status;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
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
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import sphinxserve.server.auth.TenantLimiter;
import sphinxserve.server.generate.GenerationSink;
import sphinxserve.server.telemetry.RequestTelemetry;

/**
 * The output of one OpenAI-style HTTP request, fed by one {@link GenerationSink} per choice ({@link #choice}):
 * Server-Sent Events ({@code data: {chunk}} per response, an optional usage chunk, {@code data: [DONE]} once every
 * choice finished) or, without {@code stream}, one JSON body when every choice is complete. A choice the engine ended
 * as aborted or past its deadline fails the request: that is an error, not an OpenAI finish. Errors before the first byte are an HTTP status with OpenAI's error body; after it, an
 * {@code error} event ends the stream.
 *
 * <p>Threading: Netty's writes may come from any thread and are queued on the channel's event loop in order, so
 * the engine thread writes and moves on; calls for one request come from one thread at a time (the sink contract).
 * A client that goes away flips {@link #isCancelled} (the handler also aborts the request in the backend).
 */
final class HttpSink {

  private final Channel channel;
  private final OpenAiResponses format;
  private final OpenAiRequests.Parsed request;
  private final boolean keepAlive;
  private final String requestId;
  private final RequestTelemetry telemetry;
  private final TenantLimiter limiter;
  private final Runnable onEnd;
  private final Consumer<GenerationSink> abort;
  private final List<ChoiceSink> choices = new ArrayList<>();
  private final AtomicBoolean ended = new AtomicBoolean();
  private volatile boolean cancelled;
  // Guarded by this: choices emit from the engine thread, failures may come from any thread.
  private boolean started;
  private int numFinished;

  /**
   * @param format null for a request refused before it was parsed (only {@link #fail} is called then)
   * @param abort aborts one choice's engine request (the others', when one choice fails)
   */
  HttpSink(Channel channel, OpenAiResponses format, OpenAiRequests.Parsed request, boolean keepAlive, String requestId,
      RequestTelemetry telemetry, TenantLimiter limiter, Runnable onEnd, Consumer<GenerationSink> abort) {
    this.channel = channel;
    this.format = format;
    this.request = request;
    this.keepAlive = keepAlive;
    this.requestId = requestId;
    this.telemetry = telemetry;
    this.limiter = limiter;
    this.onEnd = onEnd;
    this.abort = abort;
    if (request != null) {
      for (OpenAiRequests.ChoiceRequest c : request.choices()) choices.add(new ChoiceSink(c.index()));
    }
  }

  /** The sink of choice {@code index}. */
  GenerationSink choice(int index) {
    return choices.get(index);
  }

  /** Every choice's sink. */
  List<? extends GenerationSink> choices() {
    return choices;
  }

  /** The client went away: nothing more is written. */
  public void cancel() {
    cancelled = true;
    end(Status.CANCELLED);
  }

  /** One choice's output. */
  private final class ChoiceSink implements GenerationSink {
    final int index;
    boolean seen;
    final StringBuilder text = new StringBuilder();
    final List<TokenLogprobs> logprobs = new ArrayList<>();
    FinishReason reason;
    Usage usage = Usage.getDefaultInstance();

    ChoiceSink(int index) {
      this.index = index;
    }

    @Override
    public void emit(GenerateResponse r) {
      HttpSink.this.emit(this, r);
    }

    @Override
    public void fail(Status status) {
      HttpSink.this.fail(status);
    }

    @Override
    public boolean isCancelled() {
      return cancelled || ended.get();
    }
  }

  private synchronized void emit(ChoiceSink choice, GenerateResponse r) {
    if (ended.get()) return;
    if (limiter != null) limiter.chargeTokens(r.getTokenIdsCount());
    switch (r.getFinishReason()) {
      case ABORTED -> {
        fail(Status.CANCELLED.withDescription("the request was aborted"));
        return;
      }
      case DEADLINE -> {
        fail(Status.DEADLINE_EXCEEDED.withDescription("the request ran past its deadline"));
        return;
      }
      default -> {}
    }
    boolean last = r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED;
    if (last) {
      choice.reason = r.getFinishReason();
      choice.usage = r.getUsage();
      numFinished++;
    }
    boolean allDone = numFinished == choices.size();
    if (request.stream()) {
      if (!started) {
        started = true;
        HttpResponse head = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
        head.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .set(HttpHeaderNames.CACHE_CONTROL, HttpHeaderValues.NO_CACHE)
            .set(HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderValues.CHUNKED)
            .set("x-request-id", requestId);
        channel.write(head);
      }
      event(format.chunk(choice.index, r, !choice.seen));
      choice.seen = true;
      if (allDone) {
        if (request.includeUsage()) event(format.usageChunk(format.totalUsage(usages())));
        done();
      } else {
        channel.flush();
      }
    } else {
      choice.text.append(r.getText());
      choice.logprobs.addAll(r.getLogprobsList());
      if (allDone) {
        started = true;
        List<OpenAiResponses.ChoiceResult> results = new ArrayList<>();
        for (ChoiceSink c : choices) results.add(new OpenAiResponses.ChoiceResult(c.index, c.text.toString(), c.reason, c.logprobs));
        respond(HttpResponseStatus.OK, format.complete(results, format.totalUsage(usages())), null);
      }
    }
    if (allDone) end(Status.OK);
  }

  private List<Usage> usages() {
    List<Usage> usages = new ArrayList<>(choices.size());
    for (ChoiceSink c : choices) usages.add(c.usage);
    return usages;
  }

  /** Ends the request with an error: an HTTP status before the first byte, an {@code error} event after it. */
  public synchronized void fail(Status status) {
    if (ended.get()) return;
    if (format != null) status = format.inHttpTerms(status); // param names the field the client sent
    if (!started) {
      started = true;
      respond(OpenAiResponses.httpStatus(status.getCode()), OpenAiResponses.error(status),
          status.getCode() == Status.Code.RESOURCE_EXHAUSTED ? "1" : null);
    } else {
      event(OpenAiResponses.error(status));
      done();
    }
    end(status);
    for (ChoiceSink c : choices) abort.accept(c); // the other choices' work is wasted now
  }

  /** Writes a whole response (an error before streaming, or the answer without streaming). */
  void respond(HttpResponseStatus status, ObjectNode body, String retryAfterSeconds) {
    respond(channel, keepAlive, requestId, status, body, retryAfterSeconds);
  }

  /** A whole JSON response on {@code channel}, closing it afterwards unless {@code keepAlive}. */
  static void respond(Channel channel, boolean keepAlive, String requestId, HttpResponseStatus status, ObjectNode body,
      String retryAfterSeconds) {
    byte[] bytes = json(body).getBytes(StandardCharsets.UTF_8);
    FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(bytes));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON)
        .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length).set("x-request-id", requestId);
    if (retryAfterSeconds != null) response.headers().set(HttpHeaderNames.RETRY_AFTER, retryAfterSeconds);
    if (!keepAlive) response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
    var written = channel.writeAndFlush(response);
    if (!keepAlive) written.addListener(ChannelFutureListener.CLOSE);
  }

  private void event(ObjectNode data) {
    channel.write(new DefaultHttpContent(Unpooled.copiedBuffer("data: " + json(data) + "\n\n", StandardCharsets.UTF_8)));
  }

  private void done() {
    channel.write(new DefaultHttpContent(Unpooled.copiedBuffer("data: [DONE]\n\n", StandardCharsets.UTF_8)));
    var written = channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
    if (!keepAlive) written.addListener(ChannelFutureListener.CLOSE);
  }

  private void end(Status status) {
    if (!ended.compareAndSet(false, true)) return;
    telemetry.closed(status);
    onEnd.run();
  }

  private static String json(ObjectNode node) {
    try {
      return OpenAiResponses.JSON.writeValueAsString(node);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
