export * from './lambda-agent';
