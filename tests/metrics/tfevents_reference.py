#!/usr/bin/env python3
"""An independent TensorBoard event encoder/checker for tfevents_test.

The message types are built here from TensorFlow's field numbers (tensorflow/core/util/event.proto,
tensorflow/core/framework/summary.proto), not from anerd's .proto, and encoded by python3-protobuf.
The TFRecord framing and CRC-32C are written here from their definitions.

  encode STEP WALL TAG=VALUE...   prints the hex of one framed Event record
  check FILE                      verifies every masked CRC, prints the records as JSON
"""
import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    fdp = descriptor_pb2.FileDescriptorProto(name="tf_event_ref.proto", package="tfref",
                                             syntax="proto3")
    summary = fdp.message_type.add(name="Summary")
    value = summary.nested_type.add(name="Value")
    value.oneof_decl.add(name="value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL,
                    oneof_index=0)
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                      type_name=".tfref.Summary.Value")
    event = fdp.message_type.add(name="Event")
    event.oneof_decl.add(name="what")
    event.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                    oneof_index=0)
    event.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".tfref.Summary", oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tfref.Event"))


def frame(data):
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", masked(crc32c(length))) + data +
            struct.pack("<I", masked(crc32c(data))))


def encode(step, wall, scalars):
    event = event_class()(wall_time=float(wall), step=int(step))
    for item in scalars:
        tag, value = item.rsplit("=", 1)
        event.summary.value.add(tag=tag, simple_value=float(value))
    print(frame(event.SerializeToString()).hex())


def check(path):
    data = open(path, "rb").read()
    Event, offset, out = event_class(), 0, []
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        (length_crc,) = struct.unpack_from("<I", data, offset + 8)
        assert length_crc == masked(crc32c(data[offset:offset + 8])), f"length crc at {offset}"
        body = data[offset + 12:offset + 12 + length]
        (body_crc,) = struct.unpack_from("<I", data, offset + 12 + length)
        assert body_crc == masked(crc32c(body)), f"data crc at {offset}"
        event = Event.FromString(body)
        record = {"wall_time": event.wall_time, "step": event.step}
        if event.WhichOneof("what") == "file_version":
            record["file_version"] = event.file_version
        else:
            record["scalars"] = {v.tag: v.simple_value for v in event.summary.value
                                 if v.WhichOneof("value") == "simple_value"}
        out.append(record)
        offset += 16 + length
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        check(sys.argv[2])
