"""A Python client for sessiond's session RPC protocol (docs/PROTOCOL.md).

    from sessionclient import SessionClient, sessions_pb2, RPCError, StatusCode

    with SessionClient("127.0.0.1:7411", token=TOKEN) as client:
        channels = client.channels.list_channels().channels

Messages are protoc's Python output of Protos/ (`sessions_pb2`, `health_pb2`,
`test_service_pb2`, `rpc_envelope_pb2`).
"""
from .client import EventWatch, SessionClient
from .generated import health_pb2, rpc_envelope_pb2, sessions_pb2, test_service_pb2
from .generated.services import (ChannelServiceClient, ClockServiceClient, EventServiceClient, HealthServiceClient,
                                 PermissionServiceClient, RepServiceClient, SessionServiceClient, TestServiceClient,
                                 TokenServiceClient, UnimplementedServiceClient)
from .rpc import (DEADLINE_GRACE, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, Channel, Metadata, MetadataLike, ResponseStream,
                  RPCError, StatusCode, UnaryCall)

__version__ = "0.1.0"

__all__ = [
    "Channel", "ChannelServiceClient", "ClockServiceClient", "DEADLINE_GRACE", "DEFAULT_MAX_FRAME_BYTES", "EventServiceClient",
    "EventWatch", "HealthServiceClient", "Metadata", "MetadataLike", "PROTOCOL_VERSION", "PermissionServiceClient",
    "RPCError", "RepServiceClient", "ResponseStream", "SessionClient", "SessionServiceClient", "StatusCode",
    "TestServiceClient", "TokenServiceClient", "UnaryCall", "UnimplementedServiceClient", "health_pb2",
    "rpc_envelope_pb2", "sessions_pb2", "test_service_pb2",
]
