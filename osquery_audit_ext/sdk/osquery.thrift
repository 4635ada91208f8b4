// osquery's extension interface, as osquery core speaks it over its extension sockets.
//
// Written for osquery-audit-ext from the interface of osquery/osquery
// osquery/extensions/thrift/osquery.thrift (checked against commit
// 2a5cb9f8b565135e7e905c8796fdb998e050994f, osquery 5.x): every name, field id and type below
// must stay identical to it, since they are the wire format. Python bindings are generated from
// this file by scripts/gen_thrift.py into osquery_audit_ext/sdk/osquery_thrift/.

namespace py osquery_audit_ext.sdk.osquery_thrift

typedef map<string, string> ExtensionPluginRequest
typedef list<map<string, string>> ExtensionPluginResponse

struct InternalOptionInfo {
  1: string value,
  2: string default_value,
  3: string type,
}

typedef map<string, InternalOptionInfo> InternalOptionList

struct InternalExtensionInfo {
  1: string name,
  2: string version,
  3: string sdk_version,
  4: string min_sdk_version,
}

typedef i64 ExtensionRouteUUID
typedef map<string, ExtensionPluginResponse> ExtensionRouteTable
typedef map<string, ExtensionRouteTable> ExtensionRegistry
typedef map<ExtensionRouteUUID, InternalExtensionInfo> InternalExtensionList

enum ExtensionCode {
  EXT_SUCCESS = 0,
  EXT_FAILED = 1,
  EXT_FATAL = 2,
}

struct ExtensionStatus {
  1: i32 code,
  2: string message,
  3: ExtensionRouteUUID uuid,
}

struct ExtensionResponse {
  1: ExtensionStatus status,
  2: ExtensionPluginResponse response,
}

exception ExtensionException {
  1: i32 code,
  2: string message,
  3: ExtensionRouteUUID uuid,
}

// Served by every extension, and by core.
service Extension {
  ExtensionStatus ping(),
  ExtensionResponse call(1: string registry, 2: string item, 3: ExtensionPluginRequest request),
  void shutdown(),
}

// Served by osquery core on its manager socket.
service ExtensionManager extends Extension {
  InternalExtensionList extensions(),
  InternalOptionList options(),
  ExtensionStatus registerExtension(1: InternalExtensionInfo info, 2: ExtensionRegistry registry),
  ExtensionStatus deregisterExtension(1: ExtensionRouteUUID uuid),
  ExtensionResponse query(1: string sql),
  ExtensionResponse getQueryColumns(1: string sql),
}
