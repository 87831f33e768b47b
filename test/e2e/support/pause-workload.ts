// Manifests of workloads whose pods kwok only pretends to run (the pause image): the pods get
// loopback IPs, where a local process can stand in for a pod.

/** A Deployment of `replicas` pause pods labelled app=<name>, with one named container port. */
export function pauseDeploymentYaml(name: string, replicas: number, port: { name: string; containerPort: number }): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}}
    spec:
      containers:
      - name: ${name}
        image: registry.k8s.io/pause:3.10
        ports: [{name: ${port.name}, containerPort: ${port.containerPort}}]
`;
}

/** A Service selecting app=<name>: `port` goes to the pods' container port named `targetPort`. */
export function serviceYaml(name: string, port: { name: string; port: number; targetPort: string }): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports:
  - {name: ${port.name}, port: ${port.port}, targetPort: ${port.targetPort}}
`;
}

/** A pause Deployment and its Service, one YAML stream for kubectl apply. */
export function pauseServiceYaml(name: string, replicas: number, port: { name: string; containerPort: number; servicePort: number }): string {
  return `${pauseDeploymentYaml(name, replicas, port)}---\n${serviceYaml(name, { name: port.name, port: port.servicePort, targetPort: port.name })}`;
}
