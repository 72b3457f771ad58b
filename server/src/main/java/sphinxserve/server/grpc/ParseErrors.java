package sphinxserve.server.grpc;

import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * Makes an unparseable request message INVALID_ARGUMENT instead of grpc-java's UNKNOWN or INTERNAL.
 *
 * <p>grpc-java parses a request with the method's marshaller before any interceptor or handler sees it; the
 * protobuf marshaller throws on a malformed message and the server turns any exception there into UNKNOWN
 * ("Application error processing RPC"), whatever status it carries: the client's bytes would read as the
 * node's fault. So every request marshaller of the service is wrapped to answer {@code null} instead of
 * throwing, and every handler to close a call whose message is {@code null} with INVALID_ARGUMENT naming the
 * method, ignoring the rest of that call. The service schema (for reflection) is unchanged.
 */
public final class ParseErrors {

  private ParseErrors() {}

  /** {@code service} with unparseable requests refused as INVALID_ARGUMENT. */
  public static ServerServiceDefinition asInvalidArgument(ServerServiceDefinition service) {
    ServiceDescriptor original = service.getServiceDescriptor();
    ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(original.getName())
        .setSchemaDescriptor(original.getSchemaDescriptor());
    List<ServerMethodDefinition<?, ?>> methods = new ArrayList<>();
    for (ServerMethodDefinition<?, ?> method : service.getMethods()) {
      ServerMethodDefinition<?, ?> wrapped = wrap(method);
      descriptor.addMethod(wrapped.getMethodDescriptor());
      methods.add(wrapped);
    }
    ServerServiceDefinition.Builder builder = ServerServiceDefinition.builder(descriptor.build());
    for (ServerMethodDefinition<?, ?> m : methods) builder.addMethod(m);
    return builder.build();
  }

  private static <ReqT, RespT> ServerMethodDefinition<ReqT, RespT> wrap(ServerMethodDefinition<ReqT, RespT> method) {
    MethodDescriptor<ReqT, RespT> d = method.getMethodDescriptor();
    MethodDescriptor.Marshaller<ReqT> requests = d.getRequestMarshaller();
    MethodDescriptor.Marshaller<ReqT> lenient = new MethodDescriptor.Marshaller<>() {
      @Override
      public InputStream stream(ReqT value) {
        return requests.stream(value);
      }

      @Override
      public ReqT parse(InputStream stream) {
        try {
          return requests.parse(stream);
        } catch (RuntimeException e) {
          return null; // the handler below refuses the call
        }
      }
    };
    String type = requests instanceof MethodDescriptor.PrototypeMarshaller<ReqT> p && p.getMessagePrototype() instanceof com.google.protobuf.Message m
        ? m.getDescriptorForType().getFullName() : "request";
    String description = "request: not a valid " + type + " protobuf message";
    ServerCallHandler<ReqT, RespT> handler = method.getServerCallHandler();
    ServerCallHandler<ReqT, RespT> checking = (call, headers) -> {
      var delegate = handler.startCall(call, headers);
      return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(delegate) {
        private boolean refused;

        @Override
        public void onMessage(ReqT message) {
          if (refused) return;
          if (message == null) {
            refused = true;
            call.close(Status.INVALID_ARGUMENT.withDescription(description), new Metadata());
            return;
          }
          super.onMessage(message);
        }

        @Override
        public void onHalfClose() {
          if (!refused) super.onHalfClose();
        }
      };
    };
    return ServerMethodDefinition.create(d.toBuilder().setRequestMarshaller(lenient).build(), checking);
  }
}
