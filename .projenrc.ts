import { awscdk, javascript } from "projen";
const project = new awscdk.AwsCdkConstructLibrary({
  author: "cdk-hermes-agent maintainers",
  authorAddress: "maintainers@cdk-hermes-agent.invalid",
  cdkVersion: "2.189.1",
  defaultReleaseBranch: "main",
  jsiiVersion: "~6.0.0",
  name: "cdk-hermes-agent",
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  repositoryUrl: "https://github.com/cdk-hermes-agent/cdk-hermes-agent.git",

  // deps: [],                /* Runtime dependencies of this module. */
  // description: undefined,  /* The description is just a string that helps people understand the purpose of the package. */
  // devDeps: [],             /* Build dependencies for this module. */
  // packageName: undefined,  /* The "name" in package.json. */
});
project.synth();