export * from './egress';
export * from './gateway';
