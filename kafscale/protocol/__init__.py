"""Sans-IO Kafka wire protocol: frames, headers and the generated message codecs.

Takes bytes and returns requests; takes responses and returns bytes. Never does I/O.
"""

from .frames import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameTooLarge
from .headers import (
    RequestHeader,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_response,
)
from .messages import REQUESTS, RESPONSES, request_header_version, response_header_version
from .primitives import DecodeError, Message, UnknownApiKey, UnsupportedVersion

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES", "FrameDecoder", "FrameTooLarge",
    "RequestHeader", "decode_request", "decode_request_header", "decode_response",
    "encode_request", "encode_response",
    "REQUESTS", "RESPONSES", "request_header_version", "response_header_version",
    "DecodeError", "Message", "UnknownApiKey", "UnsupportedVersion",
]
