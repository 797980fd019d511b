export * from './base';
export * from './lambda-agent';
