// SO_ORIGINAL_DST for Node: where a connection redirected by iptables (nat REDIRECT/DNAT)
// was going before the redirect. Linux only; elsewhere the addon builds but always answers
// "not supported", so the proxy falls back to explicit mode.
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <string.h>

#ifdef __linux__
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>
#ifndef IP6T_SO_ORIGINAL_DST
// From linux/netfilter_ipv6/ip6_tables.h; defined here because that header drags in
// kernel-only types on some distributions.
#define IP6T_SO_ORIGINAL_DST 80
#endif
#endif

static napi_value make_result(napi_env env, const char *address, int port, int family) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "address", v);
  napi_create_int32(env, port, &v);
  napi_set_named_property(env, obj, "port", v);
  napi_create_int32(env, family, &v);
  napi_set_named_property(env, obj, "family", v);
  return obj;
}

static napi_value make_error(napi_env env, int err) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, obj, "errno", v);
  napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "error", v);
  return obj;
}

// getOriginalDst(fd: number): {address, port, family} | {errno, error}
// Tries IPv4 first (also right for IPv4 traffic on a dual-stack IPv6 socket), then IPv6.
static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "getOriginalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
#ifdef __linux__
  char text[INET6_ADDRSTRLEN];
  struct sockaddr_in v4;
  socklen_t len4 = sizeof v4;
  memset(&v4, 0, sizeof v4);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &len4) == 0 && v4.sin_family == AF_INET) {
    if (!inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text)) return make_error(env, errno);
    return make_result(env, text, ntohs(v4.sin_port), 4);
  }
  int err4 = errno;
  struct sockaddr_in6 v6;
  socklen_t len6 = sizeof v6;
  memset(&v6, 0, sizeof v6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &len6) == 0 && v6.sin6_family == AF_INET6) {
    if (!inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text)) return make_error(env, errno);
    return make_result(env, text, ntohs(v6.sin6_port), 6);
  }
  // The IPv4 answer is the informative one for an IPv4 socket (ENOENT: not redirected).
  return make_error(env, err4 ? err4 : errno);
#else
  return make_error(env, ENOSYS);
#endif
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "getOriginalDst", NAPI_AUTO_LENGTH, get_original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "getOriginalDst", fn);
  return exports;
}
