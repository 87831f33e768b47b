// `portway <command>`: the one binary of the npm package.

import { runDemo } from './demo/demo.js';
import { runProxyCommand } from './proxy-command.js';

const USAGE = `Usage: portway <command> [options]

Commands:
  proxy          run the gateway proxy (standalone on YAML files, or against Kubernetes)
  proxy-config   print a running proxy's listeners, routes, clusters or secrets
  operator       run the GatewayDeployment operator
  demo           run the proxy on examples/standalone with local httpbin backends

Run 'portway <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'proxy':
      return runProxyCommand(rest);
    case 'proxy-config': {
      const { runProxyConfig } = await import('../dataplane/admin/proxy-config.js');
      return runProxyConfig(rest);
    }
    case 'operator': {
      const { runOperatorCommand } = await import('./operator-command.js');
      return runOperatorCommand(rest);
    }
    case 'demo':
      return runDemo(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`portway: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}
