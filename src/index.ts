export * from './encryption-key';
export * from './knowledge-bucket';
export * from './secrets';
export * from './model';
export * from './settings';
export * from './backup-plan';
export * from './fargate';
export * from './access';
