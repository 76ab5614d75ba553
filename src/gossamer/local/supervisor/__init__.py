"""The local-mode supervisor: one process, in the node namespace, that runs the mesh.

`gossamer up` starts it detached (`nsenter --net=/run/netns/<node> python -m
gossamer.local.supervisor ...`): it lives in the node's network namespace, so it reaches
every pod directly and pods reach it at the bridge's address, but keeps the host's mount
namespace, so the pod namespaces it creates are visible to `ip netns` everywhere.

Structure (one asyncio loop on uvloop; blocking `ip`/`iptables` calls on one worker thread):

- `main`: wiring, signals, the status file `gossamer up` waits on, orderly shutdown.
- `workloads.WorkloadController`: Workloads -> pods (`podruntime.PodRuntime`: namespace,
  init rules, proxy, app, restarts with backoff) -> `Pod` objects with status.
- `services.ServiceController`: Services and Pods -> VIPs, node DNAT rules, hosts files
  (`dns.ClusterDNS`), Prometheus scrape targets.
- `prometheus.PrometheusManager`: Debian's Prometheus, restarted if it exits.
- `forward.PortForwarder`: host-facing ports (sockets bound by `up` in the host namespace).
- The identity, destination and outbound policy gRPC services
  (`gossamer.control.identity`, `.destination`, `.policy`), in-process on `<gateway>:8080`,
  `:8086` and `:8090`. Each meshed pod's proxy gets a join token for its `Pod` object
  (`gossamer.local.identity.PodIdentities`) and holds a certificate before its app starts.
- `network.NodeNetwork`, `children`, `probes`: the mechanics the above share.

Controllers see only the `Store` interface.
"""
