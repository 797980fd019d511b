export * from './access';
export * from './egress';
export * from './gateway';
